#!/usr/bin/env node
// Entry point of the `cairn` command: runs the compiled CLI.
import('../dist/src/cli/main.js')
  .then((m) => m.main(process.argv))
  .catch((err) => {
    if (err && err.code === 'ERR_MODULE_NOT_FOUND' && String(err.message).includes('dist/src/cli')) {
      console.error('cairn: the TypeScript build is missing; run `npm install` (or `npm run build`) in the package folder.');
    } else {
      console.error(err);
    }
    process.exit(1);
  });
