/**
 * The action registry (STYLE §2): plugins register their manifests; `register` returns a
 * disposer that removes exactly what it added (as simple-git's PluginStore.add).
 */
import type { AnyHandler, HookBinding, PluginManifest } from '../core/handler.js';

export interface RegisteredAction {
  name: string;
  summary: string;
  plugin: string;
  load(): Promise<AnyHandler>;
  /** See PluginManifest.handlers[].warm. */
  warm?(args: readonly string[], io: { cwd: string; env: NodeJS.ProcessEnv }): Promise<void>;
}

export interface Registry {
  /** Adds a plugin's actions; throws Error when an action name is already taken. Returns a disposer. */
  register(plugin: PluginManifest): () => void;
  lookup(action: string): RegisteredAction | undefined;
  /** Registered actions, sorted by name. */
  actions(): RegisteredAction[];
  /** Git hooks bound by every plugin. */
  hooks(): HookBinding[];
  plugins(): PluginManifest[];
}

export function createRegistry(): Registry {
  const actions = new Map<string, RegisteredAction>();
  const plugins = new Set<PluginManifest>();
  return {
    register(plugin) {
      const names = Object.keys(plugin.handlers);
      for (const name of names) if (actions.has(name)) throw new Error(`action ${name} is already registered by ${actions.get(name)!.plugin}`);
      for (const name of names) {
        const h = plugin.handlers[name]!;
        actions.set(name, { name, summary: h.summary, plugin: plugin.name, load: h.load, warm: h.warm });
      }
      plugins.add(plugin);
      return () => {
        for (const name of names) if (actions.get(name)?.plugin === plugin.name) actions.delete(name);
        plugins.delete(plugin);
      };
    },
    lookup: (action) => actions.get(action),
    actions: () => [...actions.values()].sort((a, b) => a.name.localeCompare(b.name)),
    hooks: () => [...plugins].flatMap((p) => p.hooks),
    plugins: () => [...plugins],
  };
}
