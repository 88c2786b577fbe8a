import { loadNetworkList } from '../lib/libcni/conf.js';
import { Lab } from '../conformance/lab.js';
import { sys } from '../lib/sys/index.js';

// Peak resident memory of a network's plugin execs during ADD and DEL, in a process of its own:
// getrusage(RUSAGE_CHILDREN) reports the largest descendant this process waited for, so nothing
// else may run here. Usage: node build/bench/rss-add.js <conf-dir> <network> <cni-path> <runs>
const [dir, name, path, runs] = process.argv.slice(2);
const lab = new Lab(loadNetworkList(dir, name), path.split(':'));
try {
  for (let i = 0; i < Number(runs); i++) {
    const c = lab.newContainer();
    await lab.attach(c);
    await lab.detach(c);
    lab.removeContainer(c);
  }
} finally { lab.close(); }
process.stdout.write(`${sys.childrenUsage().maxRssKiB}\n`);
