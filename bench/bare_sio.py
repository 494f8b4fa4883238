# Verbatim copy of ../shared/perf/bare_sio.py, the baseline of `make bench` (SPEC §10).
"""Benchmark server: raw aiohttp websocket echo, or python-socketio AsyncServer (aiohttp mode).

usage: bare_sio.py --kind raw|sio --port 28xxx [--uvloop] [--json std|orjson] [--redis URL]

raw:  GET /ws  websocket; text frame 'E<payload>' -> echo frame back to sender;
      'J' -> join the broadcast set; 'B<payload>' -> send payload to every joined socket;
      'S<n>,<mode>,<interval>' -> stream n tokens (mode each|batch).
sio:  events 'echo' (emit back to sid), 'echo_ack' (return value = ack),
      'echo_fast' (bypass sio.emit: encode once, sio.eio.send directly),
      'join' (enter room), 'bcast' (emit to room), 'stream' (token streaming).
Prints 'READY <pid>' on stdout when listening.  Exits by itself after --max-life seconds.
"""
import argparse
import asyncio
import os
import sys

from aiohttp import web

p = argparse.ArgumentParser()
p.add_argument('--kind', default='sio')
p.add_argument('--port', type=int, default=28100)
p.add_argument('--uvloop', action='store_true')
p.add_argument('--json', default='std')
p.add_argument('--redis', default=None)
p.add_argument('--max-life', type=float, default=900.0)
p.add_argument('--ping-interval', type=float, default=25.0)
p.add_argument('--log-redis-errors', action='store_true')
args = p.parse_args()

if args.log_redis_errors:
    import logging

    class _F(logging.Formatter):
        def format(self, r):
            return super().format(r) + ' | ' + str(getattr(r, 'redis_exception', ''))
    h = logging.StreamHandler()
    h.setFormatter(_F('%(name)s %(message)s'))
    logging.getLogger('socketio').addHandler(h)

if args.uvloop:
    import uvloop
    uvloop.install()


def tok(i):
    return f'tok{i:05d} '   # 9-10 bytes per token


async def stream_tokens(n, mode, interval, send_one, send_batch):
    """Token producer.  interval=0: tokens produced as fast as possible (one
    cooperative yield per token, like an async LLM-stream iterator);
    interval>0: one token every `interval` s.  mode 'each' emits every token,
    mode 'batch' flushes the accumulated tokens every 20 ms."""
    loop = asyncio.get_running_loop()
    if mode == 'each':
        for i in range(n):
            await send_one(tok(i))
            await asyncio.sleep(interval)
    else:
        buf = []
        last = loop.time()
        for i in range(n):
            buf.append(tok(i))
            now = loop.time()
            if now - last >= 0.020:
                await send_batch(''.join(buf))
                buf = []
                last = now
            await asyncio.sleep(interval)
        if buf:
            await send_batch(''.join(buf))


def make_raw_app():
    app = web.Application()
    members = set()

    async def ws_handler(request):
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        try:
            async for msg in ws:
                d = msg.data
                if not isinstance(d, str):
                    continue
                c = d[0]
                if c == 'E':
                    await ws.send_str(d)
                elif c == 'B':
                    for m in list(members):
                        await m.send_str(d)
                elif c == 'J':
                    members.add(ws)
                    await ws.send_str('J')
                elif c == 'S':
                    n, mode, interval = d[1:].split(',')
                    n = int(n)

                    async def one(t):
                        await ws.send_str('T' + t)

                    async def batch(t):
                        await ws.send_str('T' + t)
                    await stream_tokens(n, mode, float(interval), one, batch)
                    await ws.send_str('D')
        finally:
            members.discard(ws)
        return ws

    app.router.add_get('/ws', ws_handler)
    return app


def make_sio_app():
    import socketio
    from socketio import packet as sio_packet
    kw = {}
    if args.json == 'orjson':
        import orjson

        class OrjsonWrapper:
            """json-module shim: python-socketio calls dumps(obj, separators=...)"""
            @staticmethod
            def dumps(obj, *a, **k):
                return orjson.dumps(obj).decode()

            @staticmethod
            def loads(s, *a, **k):
                return orjson.loads(s)
        kw['json'] = OrjsonWrapper
    if args.redis:
        kw['client_manager'] = socketio.AsyncRedisManager(args.redis)
    sio = socketio.AsyncServer(async_mode='aiohttp', transports=['websocket'],
                               ping_interval=args.ping_interval,
                               cors_allowed_origins='*', **kw)
    app = web.Application()
    sio.attach(app)

    @sio.on('echo')
    async def echo(sid, data):
        await sio.emit('echo', data, to=sid)

    @sio.on('echo_ack')
    async def echo_ack(sid, data):
        return data

    @sio.on('echo_fast')
    async def echo_fast(sid, data):
        # bypass manager.emit (no per-recipient task): encode once, send via engine.io
        pkt = sio.packet_class(sio_packet.EVENT, namespace='/', data=['echo', data])
        await sio.eio.send(sio.manager.eio_sid_from_sid(sid, '/'), pkt.encode())

    @sio.on('join')
    async def join(sid, room):
        await sio.enter_room(sid, room)
        return 'ok'

    @sio.on('bcast')
    async def bcast(sid, data):
        await sio.emit('bcast', data, room=data['room'])

    @sio.on('stream')
    async def stream(sid, d):
        async def one(t):
            await sio.emit('token', t, to=sid)

        async def batch(t):
            await sio.emit('tokens', t, to=sid)
        await stream_tokens(d['n'], d['mode'], d.get('interval', 0), one, batch)
        await sio.emit('done', d['n'], to=sid)

    return app


async def main():
    app = make_raw_app() if args.kind == 'raw' else make_sio_app()
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, '127.0.0.1', args.port, backlog=4096)
    await site.start()
    print('READY', os.getpid(), flush=True)
    # bounded life: exit on its own; also exit when stdin closes (parent gone)
    loop = asyncio.get_running_loop()
    stop = loop.create_future()

    def on_stdin():
        if not sys.stdin.read(1) and not stop.done():
            stop.set_result(None)
    try:
        loop.add_reader(sys.stdin.fileno(), on_stdin)
    except Exception:
        pass
    try:
        await asyncio.wait_for(stop, args.max_life)
    except asyncio.TimeoutError:
        pass
    await runner.cleanup()

asyncio.run(main())
