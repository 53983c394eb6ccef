#!/usr/bin/env python3
"""Long-lived TCP flows for the exits lab (test/dataplane/exits.test.ts), both ends.

server (run in the internet host's namespace): accepts flows on PORT; each flow opens with
  "H <pod> <flow> <epoch>" and then sends a heartbeat line every 500 ms, which the server echoes.
  Per connection it records the source address it saw, when it opened, its last heartbeat, every
  gap between heartbeats longer than GAP_S, and when it closed. It also answers probes on PORT+1:
  a connection gets the source address it came from, then is closed.

client (run in the lab's node namespace, the test worker's child): holds FLOWS flows from each pod
  given (every pod's sockets are opened inside the pod's network namespace with setns(2), so the
  pod's routing carries them; one process for all pods keeps 300 flows cheap). A flow whose echo
  does not come back within TIMEOUT_S, or that errors, is a break: the client records it and opens
  the flow again (a new epoch), as an application with a keepalive would. Each pod named in the
  file <state>.probe (a JSON list) also opens a probe connection every PROBE_S (not waiting for the
  last one) and records when each succeeded and which source address the server saw: the time
  egress was restored.

Both write their state as JSON to a file (atomically) every 250 ms. Times are Unix epoch seconds.

Stalls: both record when their own event loop was not run for STALL_S or more (`stalls`, [from, to]),
as the measuring instrument's own fault, not the network's. The lab runs both at nice -15 so that a
busy two-core machine rarely stalls them at all. A client flow whose echo wait ran out while the
client itself stalled waits once more (the echo may be in the socket already) instead of counting a
break; a network break still runs that second wait out, and is counted.
"""
import asyncio
import ctypes
import json
import os
import socket
import sys
import time

# 300 flows at 5 heartbeats a second (0.2 s) kept two cores busy with packets alone (62 % system
# time, a load of 11 with the lab's 30 pods): 2 a second still sees a 1.5 s stall as two missed beats.
GAP_S = 1.0
TIMEOUT_S = 1.5
HEARTBEAT_S = 0.5
# A probe connection every 250 ms per moving pod (was 100 ms: with 15 pods moving, 150 new connections a
# second through the tunnels, on two cores). The egress-back times are so within 0.25 s.
PROBE_S = 0.25
CLONE_NEWNET = 0x40000000


STALL_S = 0.3
TICK_S = 0.1


class Stalls:
    """Windows when this process's event loop did not run (a watchdog ticking every TICK_S)."""

    def __init__(self):
        self.windows = []
        self.tick = time.monotonic()

    async def watch(self):
        while True:
            await asyncio.sleep(TICK_S)
            now = time.monotonic()
            late = now - self.tick - TICK_S
            if late >= STALL_S:
                t = time.time()
                self.windows.append([t - late, t])
                del self.windows[:-200]
            self.tick = now

    def since(self, t0):
        """Whether the loop stalled after t0 (epoch s), the stall under way included."""
        if time.monotonic() - self.tick - TICK_S >= STALL_S:
            return True
        return any(to > t0 for _, to in self.windows)


def dump(path, obj):
    tmp = path + '.tmp'
    with open(tmp, 'w') as f:
        json.dump(obj, f)
    os.replace(tmp, path)


async def dumper(path, get):
    while True:
        dump(path, get())
        await asyncio.sleep(0.25)


# ---------------------------------------------------------------- server

def server(host, port, state_path):
    conns = []
    stalls = Stalls()

    async def flow(reader, writer):
        peer = writer.get_extra_info('peername')[0]
        c = {'src': peer, 'opened': time.time(), 'last': None, 'gaps': [], 'closed': None, 'pod': None, 'flow': None, 'epoch': None, 'beats': 0}
        conns.append(c)
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                now = time.time()
                parts = line.decode(errors='replace').split()
                if parts and parts[0] == 'H' and len(parts) >= 4:
                    c['pod'], c['flow'], c['epoch'] = parts[1], int(parts[2]), int(parts[3])
                elif c['last'] is not None and now - c['last'] > GAP_S:
                    c['gaps'].append([c['last'], now])
                    del c['gaps'][:-20]
                c['last'] = now
                c['beats'] += 1
                writer.write(line)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            c['closed'] = time.time()
            writer.close()

    async def probe(reader, writer):
        peer = writer.get_extra_info('peername')[0]
        try:
            writer.write((peer + '\n').encode())
            await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def main():
        s1 = await asyncio.start_server(flow, host, port, reuse_address=True, backlog=1024)
        s2 = await asyncio.start_server(probe, host, port + 1, reuse_address=True, backlog=1024)
        def state():
            # Closed connections are kept 2 minutes (the scenarios look back less than that).
            now = time.time()
            conns[:] = [c for c in conns if c['closed'] is None or now - c['closed'] < 120]
            return {'at': now, 'conns': conns, 'stalls': stalls.windows}
        asyncio.get_running_loop().create_task(stalls.watch())
        asyncio.get_running_loop().create_task(dumper(state_path, state))
        async with s1, s2:
            await asyncio.gather(s1.serve_forever(), s2.serve_forever())

    asyncio.run(main())


# ---------------------------------------------------------------- client

libc = ctypes.CDLL(None, use_errno=True)
HOME_NS = None


def socket_in(netns):
    """A TCP socket created inside a named network namespace (/run/netns/NAME)."""
    fd = os.open('/run/netns/' + netns, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), 'setns ' + netns)
        try:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        finally:
            if libc.setns(HOME_NS, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), 'setns back')
    finally:
        os.close(fd)
    s.setblocking(False)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def client(config_path, state_path):
    global HOME_NS
    HOME_NS = os.open('/proc/self/ns/net', os.O_RDONLY)
    cfg = json.load(open(config_path))
    host, port, flows_per_pod = cfg['host'], cfg['port'], cfg['flows']
    flows = {}
    probes = {}
    probing = set()
    probe_flag = state_path + '.probe'
    stalls = Stalls()

    async def echo(reader):
        started = time.time()
        try:
            return await asyncio.wait_for(reader.readline(), TIMEOUT_S)
        except asyncio.TimeoutError:
            if not stalls.since(started):
                raise
        # The wait ran out while this process was not run: once more, from now.
        return await asyncio.wait_for(reader.readline(), TIMEOUT_S)

    async def connect(netns, p, timeout):
        s = socket_in(netns)
        loop = asyncio.get_running_loop()
        try:
            await asyncio.wait_for(loop.sock_connect(s, (host, p)), timeout)
        except BaseException:
            s.close()
            raise
        return await asyncio.open_connection(sock=s)

    async def one_flow(pod, netns, i):
        key = f'{pod}/{i}'
        f = flows[key] = {'pod': pod, 'flow': i, 'epoch': 0, 'connects': [], 'breaks': [], 'attempts': 0, 'up': False}
        while True:
            f['epoch'] += 1
            f['attempts'] += 1
            writer = None
            try:
                reader, writer = await connect(netns, port, TIMEOUT_S)
                writer.write(f'H {pod} {i} {f["epoch"]}\n'.encode())
                await writer.drain()
                await asyncio.wait_for(reader.readline(), TIMEOUT_S)
                f['connects'].append(time.time())
                f['up'] = True
                seq = 0
                while True:
                    await asyncio.sleep(HEARTBEAT_S)
                    seq += 1
                    writer.write(f'B {seq}\n'.encode())
                    line = await echo(reader)
                    if not line:
                        raise ConnectionError('closed by the server')
            except (asyncio.TimeoutError, ConnectionError, OSError) as e:
                if f['up']:
                    f['breaks'].append([time.time(), type(e).__name__])
                f['up'] = False
            finally:
                if writer is not None:
                    writer.transport.abort()
            await asyncio.sleep(0.1)

    async def prober(pod, netns):
        p = probes[pod] = []

        async def once(started):
            try:
                reader, writer = await connect(netns, port + 1, 3.0)
                src = (await asyncio.wait_for(reader.readline(), 3.0)).decode().strip()
                writer.transport.abort()
                if src:
                    p.append([started, time.time(), src])
                    del p[:-200]
            except (asyncio.TimeoutError, ConnectionError, OSError):
                pass

        while True:
            if pod in probing:
                asyncio.get_running_loop().create_task(once(time.time()))
            await asyncio.sleep(PROBE_S)

    async def probe_watch():
        while True:
            try:
                with open(probe_flag) as f:
                    names = json.load(f)
            except (OSError, ValueError):
                names = []
            probing.clear()
            probing.update(names)
            await asyncio.sleep(PROBE_S)

    async def main():
        tasks = [asyncio.create_task(probe_watch()), asyncio.create_task(stalls.watch())]
        for pod in cfg['pods']:
            tasks.append(asyncio.create_task(prober(pod['name'], pod['netns'])))
            for i in range(flows_per_pod):
                tasks.append(asyncio.create_task(one_flow(pod['name'], pod['netns'], i)))
                await asyncio.sleep(0.005)
        tasks.append(asyncio.create_task(dumper(state_path, lambda: {'flows': list(flows.values()), 'probes': probes, 'stalls': stalls.windows})))
        await asyncio.gather(*tasks)

    asyncio.run(main())


if __name__ == '__main__':
    if sys.argv[1] == 'server':
        server(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    elif sys.argv[1] == 'client':
        client(sys.argv[2], sys.argv[3])
    else:
        sys.exit('usage: flows.py server HOST PORT STATE | client CONFIG STATE')
