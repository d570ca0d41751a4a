"""Without network: the environment of a grading kernel. Hugging Face's libraries are told to stay offline, and
a ``sitecustomize`` module put first on the kernel's ``PYTHONPATH`` makes Python's sockets refuse any address
that is not this machine (loopback and Unix sockets still work: the kernel talks to Jupyter through them).
It stops ordinary code (urllib, requests, pip, huggingface_hub, subprocesses in Python); it is no sandbox:
code that undoes the patch, or native code opening its own sockets, still reaches the network."""

from __future__ import annotations

import os
from pathlib import Path

OFFLINE_VARIABLES = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}

SITECUSTOMIZE = '''"""Written by gradeclip_lib.grading: sockets to other machines fail while a submission is graded."""
import ipaddress
import socket

_MESSAGE = "no network while grading: only this machine (localhost) can be reached"


def _local(host):
    if host in (None, "", "localhost", "localhost.localdomain", b"localhost", socket.gethostname()):
        return True
    if isinstance(host, bytes):
        host = host.decode(errors="replace")
    try:
        ip = ipaddress.ip_address(str(host).split("%")[0])
    except ValueError:
        return False
    return ip.is_loopback or ip.is_unspecified


def _check(address):
    if isinstance(address, (str, bytes)):  # a Unix socket's path
        return
    if isinstance(address, tuple) and address and not _local(address[0]):
        raise ConnectionRefusedError(111, f"{_MESSAGE} (asked for {address[0]})")


_connect, _connect_ex, _sendto = socket.socket.connect, socket.socket.connect_ex, socket.socket.sendto
_getaddrinfo = socket.getaddrinfo


def connect(self, address):
    _check(address)
    return _connect(self, address)


def connect_ex(self, address):
    _check(address)
    return _connect_ex(self, address)


def sendto(self, data, *args):
    _check(args[-1])
    return _sendto(self, data, *args)


def getaddrinfo(host, *args, **kwargs):
    if not _local(host):
        raise socket.gaierror(socket.EAI_NONAME, f"{_MESSAGE} (asked for {host})")
    return _getaddrinfo(host, *args, **kwargs)


socket.socket.connect, socket.socket.connect_ex, socket.socket.sendto = connect, connect_ex, sendto
socket.getaddrinfo = getaddrinfo
'''


def offline_env(folder: str | Path, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a grading kernel: ``base`` (default ``os.environ``) plus the offline variables, with a
    ``sitecustomize.py`` written into ``folder`` and ``folder`` first on ``PYTHONPATH``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(SITECUSTOMIZE)
    env = dict(os.environ if base is None else base)
    env.update(OFFLINE_VARIABLES)
    env["PYTHONPATH"] = os.pathsep.join([str(folder), *filter(None, [env.get("PYTHONPATH")])])
    return env
