"""Replaying a workload trace over a fleet through the real engine, in simulated
time, to compare strategies on cost and wait (`acode-placement simulate`)."""

from acode_placement.simulation.run import Fate, Fleet, Run, simulate
from acode_placement.simulation.trace import Job, read_trace

__all__ = ["Fate", "Fleet", "Job", "Run", "read_trace", "simulate"]
