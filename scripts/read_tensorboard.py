"""Reads every scalar of a folder of TensorBoard runs with TensorBoard's own reader.

    python scripts/read_tensorboard.py REPORT/tensorboard

Prints JSON: {run: {tag: [[step, value], ...]}}, runs as paths relative to the folder.
"""

import json
import pathlib
import sys

from tensorboard.backend.event_processing import event_accumulator

root = pathlib.Path(sys.argv[1])
runs = {}
for events in sorted(root.rglob("events.out.tfevents.*")):
    accumulator = event_accumulator.EventAccumulator(
        str(events.parent), size_guidance={event_accumulator.SCALARS: 0})
    accumulator.Reload()
    run = str(events.parent.relative_to(root))
    runs[run] = {
        tag: [[event.step, event.value] for event in accumulator.Scalars(tag)]
        for tag in accumulator.Tags()["scalars"]
    }
print(json.dumps(runs))
