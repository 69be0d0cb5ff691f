"""Names shared by the server, the images and the tests; each says why it is fixed."""

from typing import Final

# Labels on every container and image we create, so clean-up finds ours and only ours.
LABEL_MANAGED: Final = "codebeaker.managed"
LABEL_INSTANCE: Final = "codebeaker.instance"  # two servers on one engine never reap each other
LABEL_SESSION: Final = "codebeaker.session"
LABEL_LANGUAGE: Final = "codebeaker.language"
LABEL_KIND: Final = "codebeaker.kind"  # "session", "run", "interactive" or "pool"
LABEL_IMAGE_HASH: Final = "codebeaker.image-hash"  # rebuild an image when its inputs change

# Inside the container. The user and the keep-alive differ so user code cannot signal PID 1's child.
WORKSPACE: Final = "/workspace"
TMP: Final = "/tmp"
ALLOWED_ROOTS: Final = (WORKSPACE, TMP)
SANDBOX_USER: Final = "1000:1000"
KEEPALIVE_USER: Final = "65534:65534"
GUEST_PATH: Final = "/opt/codebeaker/guest.py"  # stdlib-only helper baked into every image
AGENT_PATH: Final = "/opt/codebeaker/agent.py"  # beside it: the per-session command agent
KERNEL_PATH: Final = "/opt/codebeaker/kernel.py"  # one per code context, started by the agent
AGENT_USER: Final = "0:0"  # root with CAP_SETUID/CAP_SETGID only, so user code cannot kill it
AGENT_CAPS: Final = ("SETUID", "SETGID")
RUN_MARKER_ENV: Final = "CODEBEAKER_RUN"  # tags every process of one command, for the tree kill

# Exit codes clients already know from coreutils' timeout and the shell.
EXIT_TIMEOUT: Final = 124
EXIT_NOT_FOUND: Final = 127
EXIT_KILLED: Final = 137

LOCAL_TENANT: Final = "local"
"""The one tenant of a server without API keys (and of the single ``CODEBEAKER_API_KEY``)."""
