"""TRIAL as an Inspect AI task: `inspect eval dilemmakit/trial --model <any Inspect model>`.

The tasks (`trial`, and `direct` for comparison) draw their samples from our behavior sets, play TRIAL's
turns against the model under test, and score each conversation with a judge from our registry. Needs
the `inspect` extra (`pip install 'dilemmakit[inspect]'`); Inspect finds the tasks through the
`inspect_ai` entry point, which names this module.
"""

from dilemmakit.inspect.dataset import behavior_dataset, behavior_of
from dilemmakit.inspect.scorer import judged_turns
from dilemmakit.inspect.solver import trial_turns
from dilemmakit.inspect.tasks import direct, trial

__all__ = ["trial", "direct", "trial_turns", "judged_turns", "behavior_dataset", "behavior_of"]
