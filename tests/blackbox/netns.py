"""Hosts made of network namespaces, for tests that need several machines (test_multihost.py).

Net() creates one namespace holding a bridge, and Net.host(name) a namespace per host, joined to
the bridge by a veth pair, with its loopback up and one address on a /24 that no route of the
machine uses. The root namespace (the test process) gets one veth end on the same /24 (.1), so
that the test can talk to the hosts and the hosts to servers the test runs; nothing else in the
root namespace changes (no bridge, no default route, no existing interface touched).

Every name carries the test's PID. close() stops the processes started with Host.popen (by PID:
SIGTERM, then SIGKILL), then deletes every namespace and the root veth; it runs even when the
set-up failed half-way (the fixture's finalizer).
"""
import ipaddress
import os
import subprocess

from conftest import stop_process


def ip(*args, check=True):
    out = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and out.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {out.stderr.strip()}")
    return out.stdout


def used_networks():
    """Every IPv4 network the machine routes or has an address on (all tables, all links)."""
    nets = []
    lines = ip("-4", "route", "show", "table", "all").splitlines()
    lines += [" ".join(line.split()[3:4]) for line in ip("-4", "-o", "addr").splitlines()]
    for line in lines:
        words = line.split()
        if words and words[0] in ("local", "broadcast", "unicast", "anycast", "multicast"):
            words = words[1:]
        if not words or words[0] == "default":
            continue
        try:
            nets.append(ipaddress.ip_network(words[0], strict=False))
        except ValueError:
            continue
    return nets


def free_subnet():
    """A 10.x.y.0/24 that overlaps nothing in use, chosen from the PID so that two test runs at
    once are unlikely to try the same one first."""
    used = used_networks()
    for i in range(4096):
        n = (os.getpid() + i * 7) % 4096
        net = ipaddress.ip_network(f"10.{200 + n // 256}.{n % 256}.0/24")
        if not any(net.overlaps(u) for u in used):
            return net
    raise RuntimeError("no free 10.200-215.x.0/24 subnet")


class Host:
    """One namespace: `addr` is its address on the bridge; popen() runs a program in it."""

    def __init__(self, net, name, addr):
        self.net = net
        self.name = name
        self.ns = f"ia-{name}-{os.getpid()}"
        self.addr = str(addr)
        self.procs = []

    def prefix(self):
        """The command that runs the rest of an argv in this host (ip netns exec execs it: the
        PID of the Popen is the program's own)."""
        return ["ip", "netns", "exec", self.ns]

    def popen(self, args, log_path, env=None, cwd=None):
        log = open(log_path, "ab")
        proc = subprocess.Popen(self.prefix() + list(args), stdout=log, stderr=log,
                                stdin=subprocess.DEVNULL, env=env, cwd=cwd)
        log.close()
        proc.log_name = log_path
        self.procs.append(proc)
        return proc


class Net:
    """A bridge in its own namespace and the hosts on it; see the module's comment."""

    def __init__(self):
        self.pid = os.getpid()
        self.subnet = free_subnet()
        self.bridge_ns = f"ia-br-{self.pid}"
        self.root_if = f"iamh{self.pid}"
        self.root_addr = str(self.subnet.network_address + 1)
        self.hosts = []
        self.namespaces = []
        self.root_link = False
        try:
            self._add_ns(self.bridge_ns)
            ip("-n", self.bridge_ns, "link", "add", "br0", "type", "bridge")
            ip("-n", self.bridge_ns, "link", "set", "br0", "up")
            ip("link", "add", self.root_if, "type", "veth", "peer", "name", "v-root",
               "netns", self.bridge_ns)
            self.root_link = True
            ip("-n", self.bridge_ns, "link", "set", "v-root", "master", "br0", "up")
            ip("addr", "add", f"{self.root_addr}/{self.subnet.prefixlen}", "dev", self.root_if)
            ip("link", "set", self.root_if, "up")
        except BaseException:
            self.close()
            raise

    def _add_ns(self, name):
        ip("netns", "add", name)
        self.namespaces.append(name)
        ip("-n", name, "link", "set", "lo", "up")

    def host(self, name):
        """A new host on the bridge, at the next address (.11, .12, ...)."""
        h = Host(self, name, self.subnet.network_address + 11 + len(self.hosts))
        self._add_ns(h.ns)
        self.hosts.append(h)
        port = f"v-{name}"[:15]
        ip("-n", self.bridge_ns, "link", "add", port, "type", "veth", "peer", "name", "eth0",
           "netns", h.ns)
        ip("-n", self.bridge_ns, "link", "set", port, "master", "br0", "up")
        ip("-n", h.ns, "addr", "add", f"{h.addr}/{self.subnet.prefixlen}", "dev", "eth0")
        ip("-n", h.ns, "link", "set", "eth0", "up")
        return h

    def close(self):
        for h in self.hosts:
            for proc in h.procs:
                stop_process(proc)
        for name in reversed(self.namespaces):
            ip("netns", "del", name, check=False)
        self.namespaces = []
        if self.root_link:  # gone with its peer's namespace, normally
            ip("link", "del", self.root_if, check=False)
            self.root_link = False
