#!/usr/bin/env node
// socketio_server.js - the benchmark's peer: what most teams would build
// instead of Holdfast, Socket.IO 4 with @socket.io/redis-adapter, serving
// the same clients (holdfast-loadgen --protocol socketio) the same events.
//
//   node bench/node/socketio_server.js --port P --redis-port R
//        [--host 127.0.0.1] [--ping-interval MS]
//
// Run two on different ports against one Redis: an event posted to either
// reaches the subscribers of both, through the adapter's Redis pub/sub, as
// it does between two Holdfast gateways.
//   WebSocket /socket.io/?EIO=4&transport=websocket (no HTTP long-polling:
//     the loadgen speaks WebSocket only, and Holdfast has no polling
//     fallback either). A client emits "subscribe" with a channel name; the
//     server joins it to that room and emits "subscribed" with the name.
//     Events arrive as "event" with {channel, data}.
//   POST /v1/events  {"channel":"...","data":{...}} or an array of those:
//     io.to(channel).emit("event", {channel, data}) for each, then 201
//     {"published":N}; 400 for a body that is not that. Like Holdfast's
//     ingest, the answer means "handed on", but here nothing is stored: an
//     event published while Redis is away is lost, with no replay.
//   GET /healthz  200.
// --ping-interval shortens Engine.IO's heartbeat (default 25000 ms, as
// Socket.IO ships) so that a short run still sees the client answer pings.
// Prints "listening on PORT" once it accepts connections; SIGTERM or SIGINT
// closes the clients, Redis and the listener, then exits 0.
'use strict';

const http = require('http');
const { Server } = require('socket.io');
const { createAdapter } = require('@socket.io/redis-adapter');
const { createClient } = require('redis');

const MAX_BODY = 16 * 1024 * 1024;

function usage(why) {
    if (why)
        process.stderr.write(`socketio_server: ${why}\n`);
    process.stderr.write('usage: node socketio_server.js --port P --redis-port R ' +
                         '[--host 127.0.0.1] [--ping-interval MS]\n');
    process.exit(2);
}

function parseArgs(argv) {
    const opts = { host: '127.0.0.1', port: 0, redisPort: 0, pingInterval: 25000 };
    for (let i = 0; i < argv.length; i += 2) {
        const flag = argv[i], value = argv[i + 1];
        if (value === undefined)
            usage(`${flag} needs a value`);
        switch (flag) {
        case '--port': opts.port = Number(value); break;
        case '--redis-port': opts.redisPort = Number(value); break;
        case '--host': opts.host = value; break;
        case '--ping-interval': opts.pingInterval = Number(value); break;
        default: usage(`unknown flag ${flag}`);
        }
    }
    const isPort = (p) => Number.isInteger(p) && p > 0 && p < 65536;
    if (!isPort(opts.port) || !isPort(opts.redisPort))
        usage('--port and --redis-port are required');
    if (!Number.isInteger(opts.pingInterval) || opts.pingInterval <= 0)
        usage('--ping-interval must be a positive number of milliseconds');
    return opts;
}

function answer(res, status, body) {
    const text = JSON.stringify(body);
    res.writeHead(status, {
        'Content-Type': 'application/json',
        'Content-Length': Buffer.byteLength(text),
    });
    res.end(text);
}

// The events of a request body, or a string saying what is wrong with it.
function parseEvents(text) {
    let body;
    try {
        body = JSON.parse(text);
    } catch (err) {
        return `body is not JSON: ${err.message}`;
    }
    const list = Array.isArray(body) ? body : [body];
    for (const [i, ev] of list.entries()) {
        const where = Array.isArray(body) ? `event ${i}: ` : '';
        if (ev === null || typeof ev !== 'object' || Array.isArray(ev))
            return `${where}not an object`;
        if (typeof ev.channel !== 'string' || ev.channel === '')
            return `${where}"channel" must be a non-empty string`;
        if (ev.data === undefined)
            return `${where}"data" is missing`;
    }
    return list;
}

function handleRequest(io, req, res) {
    const path = req.url.split('?')[0];
    if (path === '/healthz' && (req.method === 'GET' || req.method === 'HEAD'))
        return answer(res, 200, { ok: true });
    if (path !== '/v1/events')
        return answer(res, 404, { error: 'not found' });
    if (req.method !== 'POST') {
        res.setHeader('Allow', 'POST');
        return answer(res, 405, { error: 'method not allowed' });
    }
    const chunks = [];
    let size = 0, tooLarge = false;
    req.on('data', (chunk) => {
        size += chunk.length;
        if (size > MAX_BODY)
            tooLarge = true;
        else
            chunks.push(chunk);
    });
    req.on('end', () => {
        if (tooLarge)
            return answer(res, 413, { error: `body over ${MAX_BODY} bytes` });
        const events = parseEvents(Buffer.concat(chunks).toString('utf8'));
        if (typeof events === 'string')
            return answer(res, 400, { error: events });
        for (const { channel, data } of events)
            io.to(channel).emit('event', { channel, data });
        answer(res, 201, { published: events.length });
    });
}

async function main() {
    const opts = parseArgs(process.argv.slice(2));
    // The benchmark's Redis has a password (tests/support/lib.sh exports it
    // as REDISCLI_AUTH for redis-cli); the peer authenticates like Holdfast.
    const password = process.env.REDISCLI_AUTH;
    const auth = password ? `default:${encodeURIComponent(password)}@` : '';
    const url = `redis://${auth}127.0.0.1:${opts.redisPort}`;
    const pub = createClient({ url });
    const sub = createClient({ url });
    // Without a listener an error event would end the process; the client
    // reconnects by itself, which is what a deployment would want too.
    pub.on('error', (err) => console.error(`socketio_server: redis (pub): ${err.message}`));
    sub.on('error', (err) => console.error(`socketio_server: redis (sub): ${err.message}`));
    await Promise.all([pub.connect(), sub.connect()]);

    // Engine.IO takes over the request listeners the server has when it is
    // attached and passes on whatever is not under /socket.io/, so the HTTP
    // API is the server's own listener (added later, it would answer
    // Engine.IO's requests a second time).
    let io = null;
    const server = http.createServer((req, res) => handleRequest(io, req, res));
    server.keepAliveTimeout = 65000; // a publisher idle between phases keeps its connection
    io = new Server(server, {
        transports: ['websocket'],
        serveClient: false,
        pingInterval: opts.pingInterval,
        adapter: createAdapter(pub, sub),
    });

    io.on('connection', (socket) => {
        socket.on('subscribe', (channel) => {
            if (typeof channel !== 'string' || channel === '')
                return;
            socket.join(channel);
            socket.emit('subscribed', channel);
        });
    });

    let stopping = false;
    const stop = async () => {
        if (stopping)
            return;
        stopping = true;
        // io.close() disconnects every socket and closes the HTTP server,
        // which waits for keep-alive connections unless they are cut.
        const closed = new Promise((resolve) => io.close(() => resolve()));
        server.closeAllConnections();
        await closed;
        await Promise.allSettled([pub.quit(), sub.quit()]);
        process.exit(0);
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);

    await new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(opts.port, opts.host, resolve);
    });
    console.log(`listening on ${opts.port}`);
}

main().catch((err) => {
    console.error(`socketio_server: ${err.stack || err}`);
    process.exit(1);
});
