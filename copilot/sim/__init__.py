"""What this server knows about Sim, the AI workflow builder, as its copilot backend.

Plain data and pure functions, pinned to Sim commit ``SIM_VERSION``:

- ``tools``: Sim's own copilot tools (names, descriptions, schemas, access class, Sim's
  confirmation flag) and ``tools_for_mode``;
- ``prompts``: one system prompt per mode, ``prompt_for_mode``;
- ``models``: Sim's copilot model ids to provider models, ``resolve_sim_model`` and
  ``parse_aliases`` (``SIM_MODEL_ALIASES``).
"""

from copilot.sim.models import ModelChoice, parse_aliases, resolve_sim_model
from copilot.sim.prompts import prompt_for_mode
from copilot.sim.tools import SIM_TOOLS, SIM_VERSION, SIM_VERSION_DATE, SimTool, tools_for_mode

__all__ = [
    "SIM_TOOLS",
    "SIM_VERSION",
    "SIM_VERSION_DATE",
    "ModelChoice",
    "SimTool",
    "parse_aliases",
    "prompt_for_mode",
    "resolve_sim_model",
    "tools_for_mode",
]
