import { startObserver } from '../../observe/serve.js';

// Run as a child inside a test namespace: tetherd's metrics endpoint without tetherd.
const [address, confDir, opLog] = process.argv.slice(2);
const { server } = await startObserver({ address, confDir, opLog, version: 'test' });
process.stdout.write(`ready ${server.address}\n`);
process.stdin.resume();
process.stdin.on('end', () => { void server.close().then(() => process.exit(0)); });
