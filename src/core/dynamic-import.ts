/**
 * One place for `import()` of modules that are not part of this package's own module graph:
 * the user's config file (or its cached transpilation) and packages loaded only on a rare path
 * (the TypeScript compiler on a config-cache miss).
 *
 * Normally this is plain `import()`. A process started from the V8 startup snapshot
 * (`dist/snapshot/provider-bridge.blob`, see `src/bridge/snapshot-main.ts`) has no dynamic-import
 * callback for code that was compiled into the snapshot, so a bare `import()` there throws
 * "A dynamic import callback was not specified". The snapshot's main function therefore installs
 * an importer compiled at run time ({@link setModuleImporter}).
 */

/** Loads the module at `specifier` (a `file:` URL, `node:` built-in or bare package name) and returns its namespace. */
export type ModuleImporter = (specifier: string) => Promise<unknown>;

let importer: ModuleImporter = (specifier) => import(specifier);

/**
 * `import(specifier)` through the current importer.
 *
 * @param specifier a `file:` URL (absolute), a `node:` built-in, or a package name resolvable
 *   from this package's folder
 * @returns the module namespace object
 * @throws whatever the module loader throws (not found, syntax error, the module's own errors)
 */
export function importModule<T = unknown>(specifier: string): Promise<T> {
  return importer(specifier) as Promise<T>;
}

/** Replaces the importer (the startup snapshot's main function does, before anything else runs). */
export function setModuleImporter(next: ModuleImporter): void {
  importer = next;
}
