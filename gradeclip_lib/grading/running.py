"""Run one notebook in a fresh ``python3`` kernel: every cell, errors included (``allow_errors``), under a
wall-clock limit for the whole notebook, offline. What happened is stored in the notebook's metadata
(``metadata.grading``), so the executed notebook alone says what to read from it."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import signal
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import IO

import nbformat
from jupyter_client import KernelManager
from jupyter_client.kernelspec import NATIVE_KERNEL_NAME, KernelSpecManager
from nbclient import NotebookClient
from nbclient.exceptions import DeadKernelError

from .offline import offline_env

FINISHED, TIMED_OUT, DIED, FAILED = "finished", "timed out", "kernel died", "could not run"


STOP: contextvars.ContextVar[asyncio.Task | None] = contextvars.ContextVar("grading_stop", default=None)


def take_signals(task: asyncio.Task | None = None) -> None:
    """Make Ctrl-C (and SIGTERM) cancel ``task`` (default: the one ``STOP`` names), which kills the running
    kernels on the way out; nbclient's own handlers would only kill the current kernel and go on."""
    task = task or STOP.get()
    if task is None:
        return
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, task.cancel)
        except (NotImplementedError, RuntimeError, ValueError):  # Windows, or not the main thread
            pass


class _Client(NotebookClient):
    """nbclient's client, with the grader's signal handling while a notebook runs, whose ``python3`` kernel is
    always the Python running the grader (a user's own kernel named python3 could be another one)."""

    def create_kernel_manager(self) -> KernelManager:
        if self.kernel_name != NATIVE_KERNEL_NAME:
            return super().create_kernel_manager()
        self.km = self.kernel_manager_class(kernel_name=self.kernel_name, config=self.config,
                                            kernel_spec_manager=KernelSpecManager(kernel_dirs=[]))
        return self.km

    @asynccontextmanager
    async def async_setup_kernel(self, **kwargs: object) -> AsyncIterator[None]:
        async with super().async_setup_kernel(**kwargs):
            take_signals()
            yield


class _Progress:
    """Which cell started last and which finished last (nbclient's hooks)."""

    def __init__(self) -> None:
        self.started: int | None = None
        self.finished: int | None = None

    def start(self, cell: dict, cell_index: int) -> None:
        self.started = cell_index

    def executed(self, cell: dict, cell_index: int, execute_reply: dict) -> None:
        self.finished = cell_index

    @property
    def running(self) -> int | None:
        """The cell that had started and not finished when the run stopped."""
        return self.started if self.started != self.finished else None


async def _stop(task: asyncio.Task) -> None:
    """Cancel the run (nbclient then kills its kernel) and wait until it has."""
    task.cancel()
    try:
        await task
    except BaseException:  # noqa: BLE001 - a cancelled run ends with whatever nbclient raised on the way out
        pass


async def _execute(client: NotebookClient, timeout: float, **start: object) -> bool:
    """Run the notebook (``start``: the kernel's env, cwd, ...); past ``timeout``, stop it and return False."""
    task = asyncio.ensure_future(client.async_execute(**start))
    try:
        done, _ = await asyncio.wait({task}, timeout=timeout)
    except asyncio.CancelledError:  # the whole run was stopped (Ctrl-C)
        await _stop(task)
        raise
    if done:
        task.result()  # the run's own error, if any
        return True
    await _stop(task)
    return False


def _quiet(loop: asyncio.AbstractEventLoop, context: dict) -> None:
    """Leave out what nbclient's tasks raise once their kernel was killed on purpose; report the rest."""
    task = context.get("future") or context.get("task")
    if task is not None and ("_async_poll_kernel_alive" in repr(task)
                             or isinstance(context.get("exception"), DeadKernelError)):
        return
    loop.default_exception_handler(context)


async def run_notebook_async(nb: nbformat.NotebookNode, timeout: float, cwd: str | Path, env: dict[str, str],
                             kernel: str = "python3", log: IO | None = None) -> nbformat.NotebookNode:
    """Execute ``nb`` in place (outputs, errors) in a kernel started with ``env``, within ``timeout`` seconds from
    its start, then kill the kernel; ``nb.metadata.grading`` says ``status`` (finished, timed out, kernel died,
    could not run), the ``cell`` that was running when it stopped, and the ``seconds`` it took. ``log``: a file
    for the kernel process's own output (its warnings, a crash's last words; the cells' output is in ``nb``)."""
    for cell in nb.cells:  # a submission may come with outputs: only this run's count
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
            cell.metadata.pop("execution", None)
    client = _Client(nb, kernel_name=kernel, allow_errors=True, timeout=None, record_timing=True,
                            shutdown_kernel="immediate", startup_timeout=max(int(timeout), 1))
    progress = _Progress()
    client.on_cell_start, client.on_cell_executed = progress.start, progress.executed
    client.log.setLevel(logging.CRITICAL)  # the outcome goes to the gradebook, not to the terminal
    asyncio.get_running_loop().set_exception_handler(_quiet)
    start, status, detail = time.monotonic(), FINISHED, ""
    try:
        streams = {"stdout": log, "stderr": log} if log is not None else {}
        if not await _execute(client, timeout, env=env, cwd=str(cwd), **streams):
            status = TIMED_OUT
    except DeadKernelError as err:
        status, detail = DIED, str(err)
    except Exception as err:  # a kernel that would not start, a broken notebook: recorded, not raised
        status, detail = FAILED, f"{type(err).__name__}: {err}"
    nb.metadata["grading"] = {"status": status, "cell": None if status == FINISHED else progress.running,
                              "timeout": timeout, "detail": detail, "seconds": round(time.monotonic() - start, 1)}
    return nb


def run_notebook(nb: nbformat.NotebookNode, timeout: float, cwd: str | Path,
                 kernel: str = "python3") -> nbformat.NotebookNode:
    """``run_notebook_async`` offline (see ``offline.offline_env``), from synchronous code."""
    async def main() -> nbformat.NotebookNode:
        STOP.set(asyncio.current_task())
        return await run_notebook_async(nb, timeout, cwd, offline_env(tmp), kernel)

    with tempfile.TemporaryDirectory(prefix="gradeclip-grading-") as tmp:
        return asyncio.run(main())
