"""``codebeaker mcp``: CodeBeaker as Model Context Protocol tools, on the official ``mcp``
package, over this SDK. See docs/mcp.md.

    settings.py  flags and environment     server.py       wiring, stdio and HTTP
    tools.py     commands, cells and jobs  toolbase.py     what every tool shares
    filetools.py the file tools            sessiontools.py the session tools
    owners.py    who owns which session    jobs.py         jobs that outlive a call
    render.py    SDK results to tool results
    shaping.py   cutting long output       media.py        images and binary files
    edits.py     edit_file's exact rule    errors.py       SDK errors to tool errors
    models.py    output schemas            command.py      the command line

Importing this package does not import ``mcp``: the command line registers ``mcp`` even
where the optional extra is missing.
"""

from codebeaker_client.mcp.command import main, register

__all__ = ["main", "register"]
