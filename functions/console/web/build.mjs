// Builds the console into dist/: the bundled app (esbuild, from src/main.ts with Leaflet),
// its styles, and index.html. No secrets go into the bundle: the API's base URL, the sign-in
// and the optional tile URL come from config.json, written by whoever serves it (the CDK
// deployment, or the local stack).
import { build } from 'esbuild';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';

const dist = new URL('./dist/', import.meta.url);
mkdirSync(dist, { recursive: true });
await build({
  entryPoints: ['src/main.ts'],
  bundle: true,
  minify: true,
  sourcemap: false,
  target: ['chrome120', 'firefox120', 'safari17'],
  outfile: 'dist/app.js',
  logLevel: 'warning',
});
// Leaflet's stylesheet first, then ours, in one file (the CSP allows styles from 'self' only).
const css = [
  readFileSync(new URL('./node_modules/leaflet/dist/leaflet.css', import.meta.url), 'utf8'),
  readFileSync(new URL('./src/app.css', import.meta.url), 'utf8'),
].join('\n');
writeFileSync(new URL('./app.css', dist), css);
copyFileSync(new URL('./src/index.html', import.meta.url), new URL('./index.html', dist));
