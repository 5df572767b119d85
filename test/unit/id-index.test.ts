import test from 'ava';
import { createNodeFsPort } from '../../src/core/fs-port.js';
import { openIdIndex } from '../../plugins/aggregation/id-index.js';
import { tempDir } from '../helpers/store.js';

test('the id index tells which batch each id is recorded under (the first line wins)', (t) => {
  const dir = tempDir(t);
  const index = openIdIndex(dir, createNodeFsPort());
  index.add([
    { entryId: 'a', batchId: 'batch_1' },
    { entryId: 'b', batchId: 'batch_2' },
  ]);
  index.add([{ entryId: 'a', batchId: 'batch_3' }]);
  t.deepEqual([...index.owners(['a', 'b', 'c'])], [
    ['a', 'batch_1'],
    ['b', 'batch_2'],
  ]);
  t.deepEqual([...openIdIndex(dir, createNodeFsPort()).owners(['a', 'b', 'c'])], [
    ['a', 'batch_1'],
    ['b', 'batch_2'],
  ]);
  t.deepEqual([...index.lookup(['a', 'c'])], ['a']);
});
