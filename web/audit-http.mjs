// graphql-http's GraphQL-over-HTTP server audits against one URL; prints a JSON summary.
//
//   CARE_GRAPH_TOKEN=<token> node audit-http.mjs http://127.0.0.1:8000/graphql
//
// Every audit request carries "Authorization: Bearer $CARE_GRAPH_TOKEN" when it is set (the
// token is read from the environment, not the command line, so that no process list shows
// it). The summary counts each status (ok; notice for a failed MAY, warn for a SHOULD, error
// for a MUST) and names every audit that did not pass, with its reason. Exit status: 0 when
// the audits ran (whatever they found), 2 when they could not run.
import { serverAudits } from 'graphql-http';

const url = process.argv[2];
if (!url) {
  console.error('usage: node audit-http.mjs <graphql url>');
  process.exit(2);
}
const token = process.env.CARE_GRAPH_TOKEN;

function fetchFn(input, init = {}) {
  const headers = new Headers(init.headers);
  if (token) headers.set('authorization', `Bearer ${token}`);
  return fetch(input, { ...init, headers });
}

try {
  const results = await Promise.all(serverAudits({ url, fetchFn }).map((audit) => audit.fn()));
  const counts = { ok: 0, notice: 0, warn: 0, error: 0 };
  for (const result of results) counts[result.status] += 1;
  const failed = results
    .filter((result) => result.status !== 'ok')
    .map(({ id, name, status, reason }) => ({ id, name, status, reason }));
  console.log(JSON.stringify({ total: results.length, ...counts, failed }, null, 2));
} catch (error) {
  console.error(`the audits could not run: ${error?.stack ?? error}`);
  process.exit(2);
}
