// The baseline: the same TLS stack as podvpn (fastify https, same Node, same certificate, same TLS
// floor, same body limit and keep-alive), parsing the same JSON body and answering with a precomputed
// reply of the same bytes podvpn sends. What podvpn costs above this is the webhook's own work.
//
// node bench/baseline-server.mjs --listen PORT --admin-listen PORT --tls-cert F --tls-key F --reply F

import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import Fastify from 'fastify';

const { values } = parseArgs({
  options: {
    listen: { type: 'string' },
    'admin-listen': { type: 'string' },
    'tls-cert': { type: 'string' },
    'tls-key': { type: 'string' },
    reply: { type: 'string' },
  },
});

const reply = readFileSync(values.reply, 'utf8');
const app = Fastify({
  https: { minVersion: 'TLSv1.2', cert: readFileSync(values['tls-cert']), key: readFileSync(values['tls-key']) },
  logger: false,
  bodyLimit: 6 * 1024 * 1024,
  keepAliveTimeout: 65_000,
  forceCloseConnections: 'idle',
});
app.post('/mutate', async (_request, res) => res.type('application/json; charset=utf-8').send(reply));

const admin = Fastify({ logger: false, forceCloseConnections: true });
admin.get('/readyz', async () => ({ status: 'ready' }));

await app.listen({ host: '127.0.0.1', port: Number(values.listen) });
await admin.listen({ host: '127.0.0.1', port: Number(values['admin-listen']) });

const stop = () => {
  Promise.all([app.close(), admin.close()]).then(() => process.exit(0));
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
