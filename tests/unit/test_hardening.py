from codebeaker.sandbox.hardening import (
    KEEPALIVE_GRACE_SECONDS,
    RESERVE_MB,
    ContainerLimits,
    container_config,
    fit_tmpfs,
    keepalive_seconds,
)

LIMITS = ContainerLimits(
    memory_mb=512,
    cpu_limit=0.5,
    pids_limit=128,
    workspace_size_mb=64,
    tmp_size_mb=32,
    max_file_size_mb=16,
    nofile=512,
)


def test_container_is_locked_down() -> None:
    config = container_config(
        "img", LIMITS, {"codebeaker.managed": "true"}, agent=False, lifetime_seconds=600
    )
    host = config["HostConfig"]
    assert host["NetworkMode"] == "none"
    assert config["NetworkDisabled"] is True
    assert host["CapDrop"] == ["ALL"]
    assert host["CapAdd"] == []
    assert host["SecurityOpt"] == ["no-new-privileges:true"]
    assert host["ReadonlyRootfs"] is True
    assert host["Privileged"] is False
    assert host["Init"] is True
    assert host["Memory"] == host["MemorySwap"] == 512 * 1024 * 1024
    assert host["NanoCpus"] == 500_000_000
    assert host["PidsLimit"] == 128
    assert config["User"] == "65534:65534"
    assert config["Cmd"] == ["sleep", "600"]
    assert host["AutoRemove"] is True  # gone once the keep-alive ends


def test_agent_containers_add_only_setuid_and_setgid() -> None:
    """Root keeps just enough to start commands as uid 1000; the keep-alive drops to
    nobody; everything else stays as locked down as without the agent."""
    with_agent = container_config("img", LIMITS, {}, agent=True, lifetime_seconds=60)
    without = container_config("img", LIMITS, {}, agent=False, lifetime_seconds=60)
    assert with_agent["HostConfig"]["CapAdd"] == ["SETUID", "SETGID"]
    assert with_agent["User"] == "0:0"
    assert with_agent["Cmd"][0] == "setpriv"
    assert with_agent["Cmd"][-2:] == ["sleep", "60"]
    assert with_agent["Cmd"][1:3] == ["--reuid", "65534"]
    del with_agent["HostConfig"]["CapAdd"], without["HostConfig"]["CapAdd"]
    assert with_agent["HostConfig"] == without["HostConfig"]


def test_writable_places_are_capped_tmpfs() -> None:
    tmpfs = container_config("img", LIMITS, {}, lifetime_seconds=60)["HostConfig"]["Tmpfs"]
    assert set(tmpfs) == {"/tmp", "/workspace"}
    for options in tmpfs.values():
        assert {"nosuid", "nodev"} <= set(options.split(","))
    assert "size=64m" in tmpfs["/workspace"]
    assert "uid=1000" in tmpfs["/workspace"]
    assert "size=32m" in tmpfs["/tmp"]


def test_ulimits_and_labels() -> None:
    config = container_config("img", LIMITS, {"a": "b"}, {"X": "1"}, lifetime_seconds=60)
    ulimits = {u["Name"]: u["Hard"] for u in config["HostConfig"]["Ulimits"]}
    assert ulimits == {"nofile": 512, "fsize": 16 * 1024 * 1024, "core": 0}
    assert config["Labels"] == {"a": "b"}
    assert config["Env"] == ["X=1"]


def test_tmpfs_always_leaves_memory_for_the_keepalive() -> None:
    assert fit_tmpfs(512, 256, 128) == (256, 128)
    workspace, tmp = fit_tmpfs(128, 256, 128)
    assert workspace + tmp <= 128 - RESERVE_MB
    assert workspace > tmp
    assert fit_tmpfs(64, 256, 128) == (21, 10)


def test_keepalive_outlasts_the_lifetime_by_a_reaper_tick_and_a_grace() -> None:
    """The server closes a session at its lifetime on its next reaper tick; the container
    ends by itself only after that, and whole seconds are rounded up, never down."""
    assert keepalive_seconds(6.0, 1.0) == 6 + 1 + KEEPALIVE_GRACE_SECONDS
    assert keepalive_seconds(7200.2, 5.0) == 7206 + KEEPALIVE_GRACE_SECONDS
