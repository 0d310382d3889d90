"""Exercises that check themselves, at the end of every lesson (lessons 1 to 7).

Each lesson's exercises live in a file of their own here (``lesson1.py`` ... ``lesson7.py``),
with a checker, a hint and a reference solution for each. In a notebook::

    from course_utils.exercises import lesson2 as ex

    answer = ...            # the learner replaces ... with an answer
    ex.check(1, answer)     # prints one line: right, a specific hint, or "not done yet"
    ex.hint(1)              # the next help
    ex.solution(1)          # the reference solution, as code to read (or to run)

A check never raises, so "Run all" works on a blank notebook. Checks compare numbers with
tolerances, never as strings; checks that need the learner's code run it on fresh inputs
(so that an answer hard-coded for the lesson's example does not pass) and give it a few
seconds at most.

How to write a lesson's file: make a ``Lesson(number)``, decorate one checker per exercise
with ``@lesson.exercise(n, hint=..., solution=...)``, and end with
``check, hint, solution = lesson.check, lesson.hint, lesson.solution``. A checker takes the
answer and returns ``right(...)``, ``wrong(...)`` or ``not_done()``; ``blank`` tells a blank
answer, ``close`` compares numbers or arrays, ``run_learner_code`` runs a learner's function
safely. The reference solution is the code of the whole answer cell (it ends with the
``ex.check(n, ...)`` call), so CI can put it in the cell's place and see it pass.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

RIGHT, WRONG, NOT_DONE = "right", "not yet", "not done yet"
TIME_LIMIT = 5.0  # seconds a learner's function may take on an exercise's small inputs


@dataclass(frozen=True)
class Result:
    """What a check found: ``status`` is RIGHT, WRONG or NOT_DONE; ``message`` is one line for the learner."""

    status: str
    message: str


def right(praise: str) -> Result:
    """The answer is right: ``praise`` says in one line what it shows."""
    return Result(RIGHT, praise)


def wrong(hint: str) -> Result:
    """The answer is not right: ``hint`` says specifically what seems to have gone wrong."""
    return Result(WRONG, hint)


def not_done(what: str = "replace the ... in the cell above with your answer, then run the cell again") -> Result:
    """The answer is still the blank placeholder."""
    return Result(NOT_DONE, what)


def blank(answer) -> bool:
    """Whether ``answer`` is still the placeholder: ``...`` (Ellipsis) or ``None``.

    A function whose body is only ``...`` returns ``None``, so checkers that call the learner's
    function treat a ``None`` result as "not done yet" too.
    """
    return answer is Ellipsis or answer is None


def as_array(value) -> np.ndarray | None:
    """``value`` (a number, list, NumPy array or torch tensor) as a float64 array; ``None`` if it is none of these."""
    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().cpu().numpy()
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        return None


def close(answer, expected, rtol: float = 1e-6, atol: float = 1e-8) -> bool:
    """Whether ``answer`` equals ``expected`` within the tolerances, shape included (numbers, arrays, tensors)."""
    a, b = as_array(answer), as_array(expected)
    return a is not None and b is not None and a.shape == b.shape and bool(np.allclose(a, b, rtol=rtol, atol=atol))


class LearnerCodeError(Exception):
    """The learner's code raised, or ran out of time; the message says which, for a hint."""


class _TimeUp(BaseException):
    """Raised in the learner's code by the alarm (a BaseException: their ``except Exception`` cannot eat it)."""


def run_learner_code(fn: Callable, *args, seconds: float | None = None, **kwargs):
    """Call the learner's ``fn(*args, **kwargs)``, at most ``seconds`` long; return what it returns.

    ``seconds`` defaults to ``TIME_LIMIT``, read at each call (so a test can shorten the wait).

    An exception in their code, or running out of time (an endless loop, or a loop over far too
    much), becomes a ``LearnerCodeError`` whose message a checker can turn into a hint. Where
    signals work (the main thread, not Windows) the call is interrupted when time is up;
    elsewhere it runs in a thread that is waited for at most ``seconds`` and then left behind.
    """
    if not callable(fn):
        raise LearnerCodeError(f"expected a function, got {type(fn).__name__}")
    seconds = TIME_LIMIT if seconds is None else seconds
    if hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread():
        def alarm(signum, frame):
            raise _TimeUp

        previous = signal.signal(signal.SIGALRM, alarm)
        signal.setitimer(signal.ITIMER_REAL, seconds)
        try:
            return fn(*args, **kwargs)
        except _TimeUp:
            raise LearnerCodeError(f"your function took more than {seconds:g} s on a small input "
                                   "(an endless loop?)") from None
        except Exception as e:
            raise LearnerCodeError(f"your function raised {type(e).__name__}: {e}") from None
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
    outcome: dict = {}

    def target():
        try:
            outcome["value"] = fn(*args, **kwargs)
        except Exception as e:  # reported below
            outcome["error"] = e

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        raise LearnerCodeError(f"your function took more than {seconds:g} s on a small input (an endless loop?)")
    if "error" in outcome:
        e = outcome["error"]
        raise LearnerCodeError(f"your function raised {type(e).__name__}: {e}")
    return outcome.get("value")


@dataclass
class Exercise:
    """One exercise: its checker, the hint it gives on request, and the reference solution (code)."""

    number: int
    checker: Callable[[object], Result]
    hint: str
    solution: str


@dataclass
class Lesson:
    """The exercises of one lesson, by number; ``check``, ``hint`` and ``solution`` are what notebooks call."""

    number: int
    exercises: dict[int, Exercise] = field(default_factory=dict)

    def exercise(self, number: int, hint: str, solution: str) -> Callable:
        """Register the decorated function as the checker of exercise ``number``."""
        def register(checker: Callable[[object], Result]) -> Callable[[object], Result]:
            self.exercises[number] = Exercise(number, checker, hint.strip(), solution.strip() + "\n")
            return checker
        return register

    def name(self, number: int) -> str:
        return f"Exercise {self.number}.{number}"

    def _get(self, number: int) -> Exercise | None:
        found = self.exercises.get(number)
        if found is None:
            print(f"Lesson {self.number} has no exercise {number}; its exercises are {sorted(self.exercises)}.")
        return found

    def evaluate(self, number: int, answer) -> Result:
        """The checker's verdict on ``answer``, as a ``Result`` (tests call this; it may raise on a checker bug)."""
        if blank(answer):
            return not_done()
        return self.exercises[number].checker(answer)

    def check(self, number: int, answer) -> None:
        """Print the verdict on ``answer`` in one line. Never raises, whatever the answer."""
        exercise = self._get(number)
        if exercise is None:
            return
        try:
            result = self.evaluate(number, answer)
        except LearnerCodeError as e:
            result = wrong(f"{e}. Fix that first; `ex.hint({number})` gives a nudge.")
        except Exception as e:  # a checker that trips over an unexpected answer must not stop "Run all"
            result = wrong(f"this answer could not be checked ({type(e).__name__}: {e}). "
                           f"Is it the kind of answer the exercise asks for? `ex.hint({number})` may help.")
        mark = {RIGHT: "\u2705", WRONG: "\u274c", NOT_DONE: "\u23f3"}[result.status]
        print(f"{mark} {self.name(number)}, {result.status}: {result.message}")

    def hint(self, number: int) -> None:
        """Print the exercise's hint."""
        exercise = self._get(number)
        if exercise is not None:
            print(f"Hint for {self.name(number)}: {exercise.hint}")

    def solution(self, number: int) -> None:
        """Print the reference solution: the whole answer cell, as it could be written."""
        exercise = self._get(number)
        if exercise is not None:
            print(f"A solution to {self.name(number)} (try it yourself first!):\n\n{exercise.solution}")
