// Portkey 1.15.2 on Node 20 (with @hono/node-server 1.19) answers every streamed request
// with 500 "immutable": it appends its own headers to a fetch() response, whose headers the
// Fetch standard makes immutable. This copies the headers of streamed upstream answers only,
// so Portkey can be measured at all; whole (non-stream) answers are left untouched.
const upstreamFetch = globalThis.fetch;
globalThis.fetch = async (...args) => {
  const answer = await upstreamFetch(...args);
  if (!(answer.headers.get("content-type") || "").startsWith("text/event-stream")) {
    return answer;
  }
  return new Response(answer.body, {
    status: answer.status, statusText: answer.statusText, headers: new Headers(answer.headers),
  });
};
