// Lists the C sources of one native/ folder for binding.gyp, so adding a kernel file needs no
// build-file edit. Prints paths relative to the package root, one per line.
const fs = require('node:fs');
const path = require('node:path');
const dir = process.argv[2];
const abs = path.join(__dirname, dir);
const files = fs.existsSync(abs) ? fs.readdirSync(abs).filter((f) => f.endsWith('.c')).sort() : [];
for (const f of files) console.log(`native/${dir}/${f}`);
