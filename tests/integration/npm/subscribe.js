// tests/integration/npm/subscribe.js: postgres.js's logical replication
// subscribe (a replication=database connection, CREATE_REPLICATION_SLOT
// TEMPORARY ... pgoutput, START_REPLICATION, CopyBoth with keepalive replies)
// against the target. Prints "subscribed" once streaming, then counts the
// events on public.ev until it has INSERTS inserts, UPDATES updates and
// DELETES deletes (or TIMEOUT_MS pass), and prints one JSON line: the counts,
// the sum of inserted ids and the updated values seen. Exit 0 when the counts
// are exactly those.
//   node subscribe.js PORT USER PASSWORD PUBLICATION INSERTS UPDATES DELETES TIMEOUT_MS
const postgres = require('./node_modules/postgres');
const [port, user, password, publication, ...rest] = process.argv.slice(2);
const [inserts, updates, deletes, timeout] = rest.map(Number);
(async () => {
  const sql = postgres({
    host: '127.0.0.1', port: +port, user, password, database: 'app',
    publications: publication, onnotice: () => {},
  });
  const out = { insert: 0, update: 0, delete: 0, id_sum: 0, updated: [] };
  await sql.subscribe('*:public.ev', (row, { command }) => {
    out[command]++;
    if (command === 'insert') out.id_sum += row.id;
    if (command === 'update' && out.updated.length < 3) out.updated.push(row.v);
  });
  console.log('subscribed');
  const until = Date.now() + timeout;
  while (Date.now() < until && (out.insert < inserts || out.update < updates || out.delete < deletes))
    await new Promise(r => setTimeout(r, 50));
  await new Promise(r => setTimeout(r, 300)); // anything more would be a duplicate
  console.log(JSON.stringify(out));
  await sql.end({ timeout: 2 });
  process.exit(out.insert === inserts && out.update === updates && out.delete === deletes ? 0 : 4);
})().catch(e => { console.log(JSON.stringify({ fatal: String(e) })); process.exit(1); });
