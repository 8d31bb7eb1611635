"""How sure a finding or an observation is: its own module, so the results model can
name it without loading the observation models (see ``lazy_observations``)."""

from enum import StrEnum


class Confidence(StrEnum):
    CONFIRMED = "confirmed"
    INFERRED = "inferred"
