"""Real containers (issue 5, item 3): Docker and Podman containers started with --network none join cnm networks.

The Docker engine is Debian's docker.io, started here for the session inside a throwaway "host"
namespace (a LabHost: the modules run there too), with its data root, exec root, pidfile and socket
in a temporary directory, no default bridge and no iptables/ip6tables/forwarding/masquerade of its
own, so it touches neither this machine's firewall nor its links. The image is imported from a
rootfs tarball made of Debian's static busybox (no registry). Podman, when installed, runs with
its storage and configuration in another temporary directory. Traffic is real: ping, HTTP over TCP
between containers, a published port reached from a LAN namespace.
"""

from __future__ import annotations

import io
import itertools
import json
import os
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time

import pytest
from conftest import RUN_PREFIX, LabHost, sh

IMAGE = "cnmtest/busybox:1"
BUSYBOX = "/bin/busybox"  # Debian's busybox-static: one static binary, runs in an empty rootfs
# a container that answers HTTP with its name
SERVE = "mkdir -p /www && echo %s > /www/index.html && exec httpd -f -p %d -h /www"
GET = "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 %s %d"  # busybox's nc (its static wget crashes in getaddrinfo)


def _rootfs_tarball(path: str) -> None:
    """bin/busybox and a symlink per applet: enough for sh, ping, ip, wget and httpd."""
    applets = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True, check=True).stdout.split()
    with tarfile.open(path, "w") as tar:
        for directory in ("bin", "tmp", "www"):
            info = tarfile.TarInfo(directory)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if directory == "tmp" else 0o755
            tar.addfile(info)
        tar.add(BUSYBOX, arcname="bin/busybox")
        for applet in applets:
            if applet != "busybox":
                info = tarfile.TarInfo("bin/" + applet)
                info.type, info.linkname = tarfile.SYMTYPE, "busybox"
                tar.addfile(info)
        for name, text in (("etc/passwd", "root:x:0:0:root:/:/bin/sh\n"), ("etc/group", "root:x:0:\n")):
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def _mounts_under(path: str) -> list:
    with open("/proc/self/mountinfo") as handle:
        points = [line.split()[4] for line in handle]
    return sorted((p for p in points if p == path or p.startswith(path + "/")), key=len, reverse=True)


def _cleanup_dir(path: str) -> None:
    for point in _mounts_under(path):
        subprocess.run(["umount", "-l", point], check=False)
    shutil.rmtree(path, ignore_errors=True)


class Engine:
    """A container engine on the lab host: its CLI with the environment that reaches it."""

    def __init__(self, runtime: str, host: LabHost, env: dict, tmp: str) -> None:
        self.runtime, self.host, self.env, self.tmp = runtime, host, env, tmp

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """The runtime's command, run on the lab host (as the module runs it)."""
        argv = ["nsenter", "--net=/run/netns/%s" % self.host.name, "--", self.runtime] + list(args)
        proc = subprocess.run(
            argv, capture_output=True, text=True, env=dict(os.environ, **self.env), timeout=120, check=False
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                "%s %s failed (%d): %s%s" % (self.runtime, " ".join(args), proc.returncode, proc.stdout, proc.stderr)
            )
        return proc

    def run(self, name: str, command: str, start: bool = True) -> str:
        """``docker run -d --network none`` (or ``create``): the container's ID."""
        extra = []
        if self.runtime == "podman":
            # This machine's root lacks CAP_SYS_RESOURCE, so podman's default
            # raised limits cannot be set: keep them low.
            extra = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]
        verb = "run" if start else "create"
        args = (
            [verb]
            + (["-d"] if start else [])
            + ["--network", "none", "--name", name]
            + extra
            + [self.image, "sh", "-c", command]
        )
        return self.cli(*args).stdout.strip().splitlines()[-1]

    @property
    def image(self) -> str:
        return IMAGE if self.runtime == "docker" else "localhost/" + IMAGE

    def pid(self, name: str) -> int:
        return int(self.cli("container", "inspect", "-f", "{{.State.Pid}}", name).stdout.strip())

    def exec(self, name: str, command: str, check: bool = False) -> subprocess.CompletedProcess:
        return self.cli("exec", name, "sh", "-c", command, check=check)

    def links(self, name: str) -> list:
        """Interfaces inside the container (through its init process's namespace)."""
        out = subprocess.run(
            ["nsenter", "--net=/proc/%d/ns/net" % self.pid(name), "--", "ip", "-j", "link", "show"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return sorted(link["ifname"] for link in json.loads(out))

    def module(self, _module: str, **args) -> dict:
        """Run the module on the lab host with the engine's environment (DOCKER_HOST or podman's configuration)."""
        saved = {key: os.environ.get(key) for key in self.env}
        os.environ.update(self.env)
        try:
            return self.host.module(_module, **args)
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value

    def ok(self, _module: str, **args) -> dict:
        result = self.module(_module, **args)
        assert not result.get("failed"), result
        return result

    def remove_all(self) -> None:
        ids = self.cli("ps", "-aq", check=False).stdout.split()
        if ids:
            self.cli("rm", "-f", *ids, check=False)


def _need_root_and(*commands: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("real containers need root (namespaces, a container engine)")
    for command in commands:
        if shutil.which(command) is None:
            pytest.skip(
                "%s is not installed: bash scripts/setup.sh installs Debian's docker.io, podman and busybox-static"
                % command
            )


@pytest.fixture(scope="module")
def docker():
    """dockerd for this module, inside its own throwaway host namespace, nothing of it outside a temp directory."""
    _need_root_and("dockerd", "docker", "containerd", "runc", BUSYBOX)
    host = LabHost("%s-dk" % RUN_PREFIX)
    tmp = tempfile.mkdtemp(prefix="cnm-docker-")
    sock = "unix://%s/docker.sock" % tmp
    log = open(os.path.join(tmp, "dockerd.log"), "w")
    namespace = "cnmtest-" + RUN_PREFIX  # containerd namespace, should dockerd find a system containerd to use
    argv = [
        "nsenter",
        "--net=/run/netns/%s" % host.name,
        "--",
        "dockerd",
        "--data-root",
        os.path.join(tmp, "data"),
        "--exec-root",
        os.path.join(tmp, "exec"),
        "--pidfile",
        os.path.join(tmp, "docker.pid"),
        "-H",
        sock,
        "--bridge=none",
        "--iptables=false",
        "--ip6tables=false",
        "--ip-forward=false",
        "--ip-masq=false",
        "--containerd-namespace",
        namespace,
        "--containerd-plugins-namespace",
        namespace + "-plugins",
    ]
    # What dockerd 20.10 and its shims make outside the temp directory
    # whatever the flags: removed afterwards if made here.
    made_here = [path for path in ("/etc/docker", "/run/docker", "/run/containerd") if not os.path.exists(path)]
    daemon = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    engine = Engine("docker", host, {"DOCKER_HOST": sock}, tmp)
    try:
        deadline = time.time() + 60  # readiness, not a timing assert
        while engine.cli("version", check=False).returncode != 0:
            if daemon.poll() is not None or time.time() > deadline:
                with open(os.path.join(tmp, "dockerd.log")) as handle:
                    raise AssertionError("dockerd did not start (rc %s):\n%s" % (daemon.poll(), handle.read()[-3000:]))
            time.sleep(0.2)
        tarball = os.path.join(tmp, "rootfs.tar")
        _rootfs_tarball(tarball)
        engine.cli("import", "-c", "ENV PATH=/bin", tarball, IMAGE)
        yield engine
    finally:
        try:
            if daemon.poll() is None:
                engine.remove_all()
                daemon.send_signal(signal.SIGTERM)
                try:
                    daemon.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    os.killpg(daemon.pid, signal.SIGKILL)
                    daemon.wait()
        finally:
            log.close()
            _cleanup_dir(tmp)
            for path in made_here:
                _cleanup_dir(path)
            host.destroy()


@pytest.fixture(scope="module")
def podman():
    """Podman with its storage, run root and configuration in a temp directory; its CLI runs on a lab host."""
    _need_root_and("podman", "conmon", BUSYBOX)
    host = LabHost("%s-pm" % RUN_PREFIX)
    tmp = tempfile.mkdtemp(prefix="cnm-podman-")
    for sub in ("root", "run", "tmp", "net"):
        os.makedirs(os.path.join(tmp, sub))
    with open(os.path.join(tmp, "storage.conf"), "w") as handle:
        handle.write('[storage]\ndriver = "overlay"\ngraphroot = "%s/root"\nrunroot = "%s/run"\n' % (tmp, tmp))
    with open(os.path.join(tmp, "containers.conf"), "w") as handle:
        handle.write(
            '[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n'
            'events_logfile_path = "%s/events.log"\ntmp_dir = "%s/tmp"\n'
            '[network]\nnetwork_config_dir = "%s/net"\n' % (tmp, tmp, tmp)
        )
    env = {
        "CONTAINERS_STORAGE_CONF": os.path.join(tmp, "storage.conf"),
        "CONTAINERS_CONF": os.path.join(tmp, "containers.conf"),
    }
    # Podman 4.3 keeps its blob-info cache in /var/lib/containers/cache whatever
    # the storage root: removed afterwards if made here.
    made_here = [path for path in ("/var/lib/containers", "/var/lib/containers/cache") if not os.path.exists(path)]
    engine = Engine("podman", host, env, tmp)
    try:
        tarball = os.path.join(tmp, "rootfs.tar")
        _rootfs_tarball(tarball)
        engine.cli("import", "-c", "ENV PATH=/bin", tarball, "localhost/" + IMAGE)
        yield engine
    finally:
        try:
            engine.cli("rm", "-f", "-a", "-t", "0", check=False)
            engine.cli("rmi", "-a", "-f", check=False)
        finally:
            _cleanup_dir(tmp)
            if made_here:
                shutil.rmtree(made_here[0], ignore_errors=True)
            host.destroy()


_numbers = itertools.count(1)


@pytest.fixture
def net(docker):
    """A fresh cnm bridge network on the docker host (removed with force afterwards, and every container with it)."""
    number = next(_numbers)
    name = "ct%d" % number
    docker.ok("cnm_bridge", name=name, subnet="10.77.%d.0/24" % number)
    yield name, "10.77.%d" % number
    docker.remove_all()
    docker.ok("cnm_bridge", name=name, state="absent", force=True)


def _names(prefix: str, count: int) -> list:
    return ["%s-%s%d" % (RUN_PREFIX, prefix, index) for index in range(count)]


def _host_veths(host: LabHost) -> list:
    return [name for name in host.links() if name.startswith("ve-")]


def _wait_gone(host: LabHost, veth: str) -> None:
    """A container's namespace dies asynchronously after its process: wait for its veth to go with it."""
    deadline = time.time() + 20
    while veth in host.links() and time.time() < deadline:
        time.sleep(0.1)


def test_containers_join_a_bridge_network_ping_and_talk_tcp(docker, net):
    name, prefix = net
    c1, c2 = _names("web", 2)
    for container in (c1, c2):
        docker.run(container, SERVE % (container, 8080))
    assert docker.links(c1) == ["lo"]  # --network none: only lo

    args = dict(network=name, endpoints=[{"container": c1}, {"container": c2}])
    check = docker.module("cnm_endpoint", check=True, **args)
    assert check["changed"] and not check.get("failed"), check
    assert docker.links(c1) == ["lo"] and _host_veths(docker.host) == []  # check mode changed nothing

    result = docker.ok("cnm_endpoint", **args)
    assert result["changes"] == check["changes"]  # check mode predicted the real run
    first, second = result["endpoints"]
    assert (first["container"], first["sandbox"], first["ipv4_address"]) == (
        c1,
        "container:docker/%s" % c1,
        prefix + ".2",
    )
    assert (second["container"], second["ipv4_address"]) == (c2, prefix + ".3")
    assert docker.links(c1) == ["eth0", "lo"]
    assert "inet %s.2/24" % prefix in docker.exec(c1, "ip -4 addr show eth0", check=True).stdout
    assert "default via %s.1" % prefix in docker.exec(c1, "ip route", check=True).stdout

    assert docker.exec(c1, "ping -c 1 -W 2 %s.1" % prefix).returncode == 0  # the gateway (the host's bridge)
    assert docker.exec(c1, "ping -c 1 -W 2 %s.3" % prefix).returncode == 0  # the other container
    answer = docker.exec(c1, GET % (prefix + ".3", 8080))  # TCP between the containers
    assert answer.stdout.splitlines()[-1:] == [c2], answer

    again = docker.ok("cnm_endpoint", **args)
    assert not again["changed"], again["changes"]
    store = docker.host.store()["endpoints"]
    assert {record["sandbox"] for record in store.values() if record["network"] == name} == {
        "container:docker/%s" % c for c in (c1, c2)
    }


def test_a_published_port_reaches_the_container_from_the_lan(docker, net):
    name, prefix = net
    (web,) = _names("pub", 1)
    lan = docker.host.sandbox("lan")
    sh("ip netns add %s" % lan)
    try:
        sh("ip link add up0 netns %s type veth peer name eth0 netns %s" % (docker.host.name, lan))
        docker.host.sh("ip addr add 203.0.113.1/24 dev up0 && ip link set up0 up")
        sh("ip addr add 203.0.113.2/24 dev eth0 && ip link set eth0 up && ip link set lo up", netns=lan)
        docker.run(web, SERVE % (web, 80))
        docker.ok("cnm_endpoint", network=name, container=web)
        published = docker.ok("cnm_port_publish", network=name, container=web, ports=["8080:80"])
        assert published["published"][0]["sandbox"] == "container:docker/%s" % web
        assert published["published"][0]["container_ip"] == prefix + ".2"
        fetch = GET.replace("nc", BUSYBOX + " nc") % ("203.0.113.1", 8080)
        assert sh(fetch, netns=lan, check=False).stdout.splitlines()[-1:] == [
            web
        ]  # another machine -> host:8080 -> container:80
        assert not docker.ok("cnm_port_publish", network=name, container=web, ports=["8080:80"])["changed"]

        docker.ok("cnm_port_publish", network=name, container=web, state="absent")
        assert sh(fetch, netns=lan, check=False).stdout.splitlines()[-1:] != [web]
    finally:
        sh("ip netns del %s" % lan, check=False)


def test_detach_and_container_removal_leave_nothing(docker, net):
    name, prefix = net
    kept, removed, later = _names("gone", 3)
    for container in (kept, removed):
        docker.run(container, "sleep 3600")
    result = docker.ok("cnm_endpoint", network=name, endpoints=[{"container": kept}, {"container": removed}])
    veths = {e["container"]: e["host_ifname"] for e in result["endpoints"]}
    docker.ok(
        "cnm_port_publish",
        network=name,
        endpoints=[{"container": kept, "ports": ["9001:80"]}, {"container": removed, "ports": ["9002:80"]}],
    )

    # Detach a running container: its interface, veth, lease and ports go; the container keeps only lo.
    detached = docker.ok("cnm_endpoint", network=name, container=kept, state="absent")
    assert detached["changed"] and detached["endpoint"]["sandbox"] == "container:docker/%s" % kept
    assert docker.links(kept) == ["lo"] and veths[kept] not in docker.host.links()
    assert not docker.ok("cnm_endpoint", network=name, container=kept, state="absent")["changed"]

    # Remove a container while attached: its namespace (and the veth) die with it; state=absent cleans up the rest.
    docker.cli("rm", "-f", removed)
    _wait_gone(docker.host, veths[removed])
    assert veths[removed] not in docker.host.links()
    gone = docker.ok("cnm_endpoint", network=name, container=removed, state="absent")
    assert gone["changed"]  # the lease and the published port
    store = docker.host.store()
    assert [r for r in store["endpoints"].values() if r["network"] == name] == []
    assert [p for p in store.get("ports", {}).values() if p["network"] == name] == []
    assert (
        "tcp . 9002 " not in docker.host.ruleset() and "tcp . 9001 " not in docker.host.ruleset()
    )  # map elements of the ports
    assert _host_veths(docker.host) == []
    assert not docker.ok("cnm_endpoint", network=name, container=removed, state="absent")["changed"]

    # A removed container's lease is reclaimed by the next attach even without state=absent.
    docker.run(removed, "sleep 3600")
    docker.run(later, "sleep 3600")
    first = docker.ok("cnm_endpoint", network=name, container=removed)["endpoint"]
    assert first["ipv4_address"] == prefix + ".2"
    docker.cli("rm", "-f", removed)
    _wait_gone(docker.host, first["host_ifname"])
    second = docker.ok("cnm_endpoint", network=name, container=later, ipv4_address=prefix + ".2")
    assert second["reclaimed"] == [
        {"network": name, "sandbox": "container:docker/%s" % removed, "ipv4_address": prefix + ".2"}
    ]
    docker.ok("cnm_endpoint", network=name, container=later, state="absent")
    assert _host_veths(docker.host) == []


def test_a_restarted_container_gets_its_address_and_veth_back(docker, net):
    name, prefix = net
    (box,) = _names("again", 1)
    docker.run(box, "sleep 3600")
    before = docker.ok("cnm_endpoint", network=name, container=box)["endpoint"]
    old_pid = docker.pid(box)
    docker.cli("restart", "-t", "0", box)
    assert docker.pid(box) != old_pid and docker.links(box) == ["lo"]  # a new process in a new namespace
    after = docker.ok("cnm_endpoint", network=name, container=box)
    assert after["changed"]
    assert (after["endpoint"]["ipv4_address"], after["endpoint"]["host_ifname"]) == (
        before["ipv4_address"],
        before["host_ifname"],
    )
    assert docker.exec(box, "ping -c 1 -W 2 %s.1" % prefix).returncode == 0


def test_bad_container_inputs_fail_clearly_and_change_nothing(docker, net, tmp_path):
    name, _prefix = net
    created, stopped, running = _names("bad", 3)
    docker.run(created, "sleep 3600", start=False)
    docker.run(stopped, "sleep 3600")
    docker.cli("stop", "-t", "0", stopped)
    docker.run(running, "sleep 3600")
    cases = [
        (dict(container=created), "option 'container': %s is not running (docker status: created)" % created),
        (dict(container=stopped), "option 'container': %s is not running (docker status: exited)" % stopped),
        (
            dict(container=RUN_PREFIX + "-nosuch"),
            "option 'container': %s-nosuch is not a docker container on this host" % RUN_PREFIX,
        ),
        (
            dict(endpoints=[{"container": running}, {"container": stopped}]),
            "option 'endpoints[1].container': %s is not running" % stopped,
        ),
        (
            dict(
                endpoints=[
                    {"container": running},
                    {"container": docker.cli("inspect", "-f", "{{.Id}}", running).stdout.strip()[:12]},
                ]
            ),
            "option 'endpoints[1].container'",
        ),
        (dict(container="no/slash"), "option 'container': no/slash is not a container name or ID"),
        (dict(netns="x", container_runtime="podman"), "option 'container_runtime': podman needs 'container'"),
        (dict(container=running, container_runtime="lxc"), "container_runtime"),
        (dict(network="host", container=running), "option 'container'"),
    ]
    before = docker.host.snapshot()
    for args, message in cases:
        result = docker.module("cnm_endpoint", **dict(dict(network=name), **args))
        assert result.get("failed") and message in result["msg"], (args, result)
    result = docker.module("cnm_port_publish", network=name, container=stopped, ports=["9100:80"])
    assert result.get("failed") and "option 'container': %s is not running" % stopped in result["msg"], result
    result = docker.module("cnm_port_publish", network=name, container=running, ports=["9100:80"])
    assert (
        result.get("failed")
        and "option 'container': %s has no endpoint on network %s" % (running, name) in result["msg"]
    ), result

    # Check mode: a container that does not run yet is assumed started by an earlier task of the play (as a network is).
    predicted = docker.module("cnm_endpoint", check=True, network=name, container=created)
    assert predicted["changed"] and not predicted.get("failed"), predicted
    assert "a running docker container %s does not exist yet" % created in json.dumps(predicted.get("warnings")), (
        predicted.get("warnings")
    )
    assert predicted["endpoint"]["sandbox"] == "container:docker/%s" % created
    predicted = docker.module("cnm_port_publish", check=True, network=name, container=created, ports=["9100:80"])
    assert not predicted.get("failed") and created in json.dumps(predicted.get("warnings")), predicted

    # The runtime's command missing: a PATH without docker (nsenter is linked in so the module still starts).
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "nsenter").symlink_to(shutil.which("nsenter"))
    path = os.environ["PATH"]
    os.environ["PATH"] = "%s:/usr/sbin:/sbin" % bin_dir
    try:
        result = docker.module("cnm_endpoint", network=name, container=running)
    finally:
        os.environ["PATH"] = path
    assert (
        result.get("failed") and "option 'container_runtime': docker is not installed on this host" in result["msg"]
    ), result
    assert docker.host.snapshot() == before
    assert docker.links(running) == ["lo"]


def test_podman_container_joins_and_leaves(podman):
    host = podman.host
    name = "pm1"
    host.ok("cnm_bridge", name=name, subnet="10.78.0.0/24")
    p1, p2 = _names("pod", 2)
    try:
        podman.run(p1, SERVE % (p1, 8080))
        podman.run(p2, "sleep 3600")
        result = podman.ok(
            "cnm_endpoint", network=name, container_runtime="podman", endpoints=[{"container": p1}, {"container": p2}]
        )
        assert [e["sandbox"] for e in result["endpoints"]] == ["container:podman/%s" % p1, "container:podman/%s" % p2]
        assert podman.exec(p2, "ping -c 1 -W 2 10.78.0.1").returncode == 0
        assert podman.exec(p2, GET % ("10.78.0.2", 8080)).stdout.splitlines()[-1:] == [p1]
        assert not podman.ok(
            "cnm_endpoint", network=name, container_runtime="podman", endpoints=[{"container": p1}, {"container": p2}]
        )["changed"]
        podman.ok("cnm_endpoint", network=name, container=p1, container_runtime="podman", state="absent")
        assert podman.links(p1) == ["lo"]
        veth = result["endpoints"][1]["host_ifname"]
        podman.cli("rm", "-f", "-t", "0", p2)
        _wait_gone(host, veth)
        assert podman.ok("cnm_endpoint", network=name, container=p2, container_runtime="podman", state="absent")[
            "changed"
        ]
        assert host.store()["endpoints"] == {} and _host_veths(host) == []
    finally:
        podman.cli("rm", "-f", "-a", "-t", "0", check=False)
        podman.ok("cnm_bridge", name=name, state="absent", force=True)
