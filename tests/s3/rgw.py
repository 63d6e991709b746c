"""A real radosgw for tests: one monitor, one memstore OSD and radosgw on loopback.

Everything lives in one temporary directory; each daemon runs in the foreground as our child
and is stopped by its PID. Cluster authentication is off (cephx is not what we test; S3
signatures are, and radosgw checks those itself), which needs the crc messenger mode on the
client side, else radosgw loops on "get_initial_auth_request returned -13".

Run it by hand: /usr/bin/python3 tests/s3/rgw.py  (prints the endpoint and keys; Ctrl-C or
SIGTERM stops it; --check starts, prints and stops).

Rgw(host=ADDR, prefix=["ip", "netns", "exec", NS]) runs it on another host of a test's network
(tests/blackbox/netns.py): every command runs through the prefix, the monitor and the OSD talk on
that host's own loopback, and radosgw's S3 endpoint listens on ADDR.
"""
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid

ACCESS_KEY = "IATESTACCESSKEY00001"
SECRET_KEY = "iaTestSecretKey/0000000000000000000000000"
REGION = "us-east-1"


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc, timeout=20):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


FAKETIME_LIB = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"  # Debian libfaketime


class Rgw:
    """Starts the cluster in __init__ (about 15 s); stop() ends it and removes its files."""

    def __init__(self, base=None, timeout=120.0, host="127.0.0.1", prefix=()):
        self.dir = tempfile.mkdtemp(prefix="ia-rgw-", dir=base)
        self.host = host
        self.prefix = list(prefix)
        self.mon_port = _free_port()
        self.port = _free_port()
        self.endpoint = f"http://{host}:{self.port}"
        self.access_key = ACCESS_KEY
        self.secret_key = SECRET_KEY
        self.region = REGION
        self.procs = []
        self.conf = os.path.join(self.dir, "ceph.conf")
        try:
            self._configure()
            self._start(timeout)
        except BaseException:
            self.stop()
            raise

    def _path(self, *parts):
        return os.path.join(self.dir, *parts)

    def _configure(self):
        for d in ("mon", "osd", "run", "log", "rgw"):
            os.makedirs(self._path(d))
        fsid = str(uuid.uuid4())
        self.fsid = fsid
        conf = f"""[global]
fsid = {fsid}
mon_host = v2:127.0.0.1:{self.mon_port}
public_addr = 127.0.0.1
ms_bind_msgr1 = false
ms_bind_ipv6 = false
auth_cluster_required = none
auth_service_required = none
auth_client_required = none
ms_mon_client_mode = crc
ms_client_mode = crc
ms_cluster_mode = crc
ms_service_mode = crc
ms_mon_cluster_mode = crc
ms_mon_service_mode = crc
mon_allow_pool_size_one = true
mon_warn_on_pool_no_redundancy = false
osd_pool_default_size = 1
osd_pool_default_min_size = 1
osd_pool_default_pg_num = 8
osd_pool_default_pgp_num = 8
osd_pool_default_pg_autoscale_mode = off
mon_max_pg_per_osd = 1000
osd_crush_chooseleaf_type = 0
osd_objectstore = memstore
memstore_device_bytes = 2147483648
run_dir = {self._path("run")}
admin_socket = {self._path("run", "$name.asok")}
log_file = {self._path("log", "$name.log")}
pid_file = {self._path("run", "$name.pid")}
mon_data = {self._path("mon", "$cluster-$id")}
osd_data = {self._path("osd", "$cluster-$id")}
keyring = {self._path("keyring")}
crash_dir = {self._path("log")}
exe_path = /nonexistent
debug_ms = 0
[client.rgw.test]
rgw_frontends = beast endpoint={self.host}:{self.port}
rgw_data = {self._path("rgw")}
rgw_enable_usage_log = false
rgw_dns_name = {self.host}
"""
        with open(self.conf, "w") as f:
            f.write(conf)
        open(self._path("keyring"), "w").close()

    def _run(self, *args, timeout=60):
        r = subprocess.run(self.prefix + list(args), capture_output=True, text=True,
                           timeout=timeout, cwd=self.dir)
        if r.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} exited with {r.returncode}:\n{r.stdout}"
                               f"{r.stderr}\n{self.logs()}")
        return r

    def _daemon(self, *args):
        log = open(self._path("log", os.path.basename(args[0]) + ".out"), "ab")
        p = subprocess.Popen([*self.prefix, *args, "-f", "-c", self.conf], stdout=log,
                             stderr=log, stdin=subprocess.DEVNULL, cwd=self.dir)
        log.close()
        self.procs.append(p)
        return p

    def _ceph(self, *args, timeout=60):
        return self._run("ceph", "-c", self.conf, "--connect-timeout", "20", *args,
                         timeout=timeout)

    def _start(self, timeout):
        deadline = time.monotonic() + timeout
        monmap = self._path("monmap")
        self._run("monmaptool", "--create", "--clobber", "--fsid", self.fsid,
                  "--addv", "a", f"[v2:127.0.0.1:{self.mon_port}]", monmap)
        self._run("ceph-mon", "-c", self.conf, "--mkfs", "-i", "a", "--monmap", monmap)
        self._daemon("ceph-mon", "-i", "a")
        osd_uuid = str(uuid.uuid4())
        osd_id = self._ceph("osd", "new", osd_uuid).stdout.strip()
        os.makedirs(self._path("osd", f"ceph-{osd_id}"))
        self._run("ceph-osd", "-c", self.conf, "-i", osd_id, "--mkfs", "--osd-uuid", osd_uuid)
        self._daemon("ceph-osd", "-i", osd_id)
        self.rgw = self._daemon("radosgw", "-n", "client.rgw.test")
        self._wait_s3(deadline)
        self._run("radosgw-admin", "-c", self.conf, "user", "create", "--uid", "iatest",
                  "--display-name", "interview-api tests", "--access-key", self.access_key,
                  "--secret-key", self.secret_key, timeout=max(5, deadline - time.monotonic()))

    def gateway_in_the_past(self, shift="-3d", timeout=60.0):
        """A second radosgw on the same cluster whose clock runs `shift` behind (libfaketime):
        objects written through it carry an old LastModified, for tests of retention. Returns
        its endpoint; it stops with the cluster. Clients must sign with the same shifted clock
        (faketime_env())."""
        port = _free_port()
        log = open(self._path("log", f"radosgw-past-{port}.out"), "ab")
        env = dict(os.environ, **self.faketime_env(shift))
        p = subprocess.Popen(["radosgw", "-n", "client.rgw.past", "-f", "-c", self.conf,
                              "--rgw_frontends", f"beast endpoint=127.0.0.1:{port}",
                              "--rgw_data", self._path("rgw"), "--rgw_enable_usage_log",
                              "false", "--rgw_dns_name", "127.0.0.1"],
                             stdout=log, stderr=log, stdin=subprocess.DEVNULL, cwd=self.dir,
                             env=env)
        log.close()
        self.procs.append(p)
        saved, self.port = self.port, port
        try:
            self._wait_s3(time.monotonic() + timeout)
        finally:
            self.port = saved
        return f"http://127.0.0.1:{port}"

    @staticmethod
    def faketime_env(shift):
        """The environment that runs a program with its wall clock shifted (libfaketime; ASan
        builds accept the preload with verify_asan_link_order=0)."""
        return {"LD_PRELOAD": FAKETIME_LIB, "FAKETIME": shift, "FAKETIME_DONT_RESET": "1",
                "ASAN_OPTIONS": os.environ.get("ASAN_OPTIONS", "") +
                ":verify_asan_link_order=0"}

    def _wait_s3(self, deadline):
        while time.monotonic() < deadline:
            for p in self.procs:
                if p.poll() is not None:
                    raise RuntimeError(f"{p.args[0]} exited with {p.returncode}; logs in "
                                       f"{self._path('log')}:\n{self.logs()}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5) as s:
                    s.sendall(b"GET / HTTP/1.0\r\nHost: %s\r\n\r\n" % self.host.encode())
                    if s.recv(12).startswith(b"HTTP/1."):
                        return
            except OSError:
                pass
            time.sleep(0.25)
        raise RuntimeError(f"radosgw did not answer S3 in time; logs:\n{self.logs()}")

    def logs(self, tail=40):
        out = []
        logdir = self._path("log")
        if os.path.isdir(logdir):
            for name in sorted(os.listdir(logdir)):
                try:
                    with open(os.path.join(logdir, name), errors="replace") as f:
                        lines = f.readlines()[-tail:]
                except OSError:
                    continue
                out.append(f"--- {name}\n" + "".join(lines))
        return "\n".join(out)

    def rss_kib(self):
        total = 0
        for p in self.procs:
            try:
                with open(f"/proc/{p.pid}/status") as f:
                    for line in f:
                        if line.startswith("VmRSS:"):
                            total += int(line.split()[1])
            except OSError:
                pass
        return total

    def stop(self):
        for p in reversed(self.procs):
            _stop(p)
        self.procs = []
        shutil.rmtree(self.dir, ignore_errors=True)


def _main():
    # Run by hand or in the background: SIGTERM and SIGINT both stop the cluster cleanly.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGINT, signal.default_int_handler)
    t0 = time.monotonic()
    rgw = Rgw()
    try:
        print(f"radosgw answers S3 at {rgw.endpoint} after {time.monotonic() - t0:.1f} s, "
              f"RSS {rgw.rss_kib() // 1024} MiB", flush=True)
        print(f"AWS_ACCESS_KEY_ID={rgw.access_key} AWS_SECRET_ACCESS_KEY={rgw.secret_key}",
              flush=True)
        if not (len(sys.argv) > 1 and sys.argv[1] == "--check"):
            signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        rgw.stop()


if __name__ == "__main__":
    _main()
