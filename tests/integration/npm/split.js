// tests/integration/npm/split.js: postgres.js pipelines queries on its
// connections; through read_write_split, reads and writes interleaved on one
// connection must each land where they may: every write on the primary, no
// errors. Prints one JSON line: errors, writes off the primary, reads per side.
//   node split.js PORT PRIMARY_PORT   (env PREPARE=1 for named statements, MAX=N connections)
const postgres = require('./node_modules/postgres');
const [port, primary] = process.argv.slice(2).map(Number);
(async () => {
  const sql = postgres({
    host: '127.0.0.1', port, user: 'app', password: 'app', database: 'app',
    max: +(process.env.MAX || 1), prepare: process.env.PREPARE === '1', onnotice: () => {},
  });
  const out = { errors: 0, wrong_writes: 0, reads_replica: 0, reads_primary: 0, messages: [] };
  const failed = e => { out.errors++; if (out.messages.length < 5) out.messages.push(`${e.code} ${e.message}`); };
  for (let round = 0; round < 20; round++) {
    const all = [];
    for (let i = 0; i < 30; i++) {
      if (i % 3 === 1)
        all.push(sql`INSERT INTO rt VALUES (${-1000 - i}) RETURNING inet_server_port() AS p`
          .then(r => { if (r[0].p !== primary) out.wrong_writes++; }, failed));
      else
        all.push(sql`SELECT inet_server_port() AS p`
          .then(r => { if (r[0].p === primary) out.reads_primary++; else out.reads_replica++; }, failed));
    }
    await Promise.all(all);
  }
  await sql.end();
  console.log(JSON.stringify(out));
})().catch(e => { console.log(JSON.stringify({ fatal: String(e) })); process.exit(1); });
