# Copyright: k8sedge developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Task durations for the benchmarks, so ansible-playbook's own start-up counts for neither side."""

from __future__ import annotations

DOCUMENTATION = r"""
name: bench_timer
type: aggregate
short_description: Record each task's duration (and one task's result) to JSON files
description:
  - When the playbook ends, writes a JSON object whose C(tasks) list holds each task's C(name),
    C(seconds), C(status) and C(at), when it started in seconds after the playbook did. A task's
    time runs from its start to its last host's result, on the controller's clock.
  - Optionally writes the result of one task, named in O(capture_task), to O(capture_file) when it succeeds.
requirements:
  - enabled in callbacks_enabled
options:
  timings_file:
    description: Where to write the task durations.
    env:
      - name: BENCH_TIMINGS_FILE
    required: true
  capture_task:
    description: The name of the task whose result is written to O(capture_file).
    env:
      - name: BENCH_CAPTURE_TASK
    default: ""
  capture_file:
    description: Where to write the captured result.
    env:
      - name: BENCH_CAPTURE_FILE
    default: ""
"""

import json
import time

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "bench_timer"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        self._tasks: list[dict] = []
        self._started = 0.0
        self._playbook_started = time.monotonic()

    def v2_playbook_on_start(self, playbook) -> None:
        self._playbook_started = time.monotonic()

    def v2_playbook_on_task_start(self, task, is_conditional) -> None:
        self._started = time.monotonic()
        self._tasks.append({"name": task.get_name(), "seconds": None, "status": "started",
                            "at": round(self._started - self._playbook_started, 3)})

    def v2_playbook_on_handler_task_start(self, task) -> None:
        self.v2_playbook_on_task_start(task, False)

    def _finish(self, status: str) -> None:
        self._tasks[-1].update(seconds=time.monotonic() - self._started, status=status)

    def v2_runner_on_ok(self, result) -> None:
        self._finish("ok")
        # After the clock stopped: converting a large result to plain types takes seconds.
        if self.get_option("capture_task") and result.task_name == self.get_option("capture_task"):
            with open(self.get_option("capture_file"), "w", encoding="utf-8") as handle:
                json.dump(result.result, handle, default=str)

    def v2_runner_on_failed(self, result, ignore_errors: bool = False) -> None:
        self._finish("failed")

    def v2_runner_on_unreachable(self, result) -> None:
        self._finish("unreachable")

    def v2_runner_on_skipped(self, result) -> None:
        self._finish("skipped")

    def v2_playbook_on_stats(self, stats) -> None:
        with open(self.get_option("timings_file"), "w", encoding="utf-8") as handle:
            json.dump({"tasks": self._tasks}, handle)
