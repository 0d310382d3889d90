"""The exercises of lesson 5 (transfer learning), with their checks, hints and solutions."""

from __future__ import annotations

import copy
import dis

import torch
import torchvision
from torch import nn

from course_utils.digits import digit_images, on_canvas
from course_utils.exercises import (
    LearnerCodeError,
    Lesson,
    Result,
    as_array,
    close,
    not_done,
    right,
    run_learner_code,
    wrong,
)

lesson = Lesson(5)

# --- Exercise 1: freeze a body by hand ---------------------------------------------------------------


def _models_to_freeze() -> list[tuple[str, nn.Module, nn.Module]]:
    """Fresh models to try a learner's ``freeze_body`` on: ``(description, model, head)``.

    A small CNN with BatchNorm (a ``Sequential`` whose last layer is the head), a torchvision
    ResNet (head ``fc``) and the same ResNet frozen completely beforehand (a freeze that only ever
    switches things off would leave its head and BatchNorm layers frozen).
    """
    torch.manual_seed(0)
    small = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 8, 3), nn.BatchNorm2d(8),
                          nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 3))
    resnet = torchvision.models.resnet18(num_classes=7)
    frozen = torchvision.models.resnet18(num_classes=7)
    for p in frozen.parameters():
        p.requires_grad_(False)
    return [("a small CNN", small, small[-1]), ("a resnet18", resnet, resnet.fc),
            ("a resnet18 that was completely frozen before", frozen, frozen.fc)]


def _should_train(model: nn.Module, head: nn.Module) -> dict[str, bool]:
    """For each named parameter: whether it trains after the body is frozen (head and BatchNorm: yes)."""
    in_head = {id(p) for p in head.parameters()}
    wanted = {}
    for module_name, module in model.named_modules():
        for name, p in module.named_parameters(recurse=False):
            full = f"{module_name}.{name}" if module_name else name
            wanted[full] = id(p) in in_head or isinstance(module, nn.BatchNorm2d)
    return wanted


_RETURN_NONE = ("RESUME", "NOP", "LOAD_CONST", "RETURN_VALUE", "RETURN_CONST")   # all an empty function does


def _does_nothing(fn) -> bool:
    """Whether ``fn`` is still the cell's blank: a function whose body is only ``...``, ``pass`` or a docstring.

    ``freeze_body`` works in place and returns ``None`` when it is finished too, so its result
    cannot tell the blank; its code can: all it does is return ``None``.
    """
    try:
        steps = list(dis.get_instructions(fn))
    except TypeError:  # not Python code (a builtin, a class): not the blank
        return False
    only_returns = all(step.opname in _RETURN_NONE for step in steps)
    return only_returns and all(step.argval is None for step in steps if "CONST" in step.opname)


@lesson.exercise(
    1,
    hint="Walk over `model.modules()`; for each module, its own parameters are "
         "`module.parameters(recurse=False)`. Body parameters get `requires_grad = False`, except those of "
         "`nn.BatchNorm2d` layers; every parameter of `head` gets `requires_grad = True`.",
    solution="""
def freeze_body(model, head):
    in_head = {id(p) for p in head.parameters()}
    for module in model.modules():
        for p in module.parameters(recurse=False):
            if id(p) not in in_head:
                p.requires_grad = isinstance(module, nn.BatchNorm2d)   # BatchNorm keeps training
    for p in head.parameters():
        p.requires_grad = True

ex.check(1, freeze_body)
""",
)
def check_freeze_body(freeze_body) -> Result:
    """Exercise 1: the learner's ``freeze_body(model, head)`` must do what ``optim.freeze`` does."""
    if not callable(freeze_body):
        return wrong("give the function itself: `ex.check(1, freeze_body)`, without calling it")
    if _does_nothing(freeze_body):
        return not_done()
    for description, model, head in _models_to_freeze():
        returned = run_learner_code(freeze_body, model, head)
        wanted = _should_train(model, head)
        got = {name: p.requires_grad for name, p in model.named_parameters()}
        if got == wanted:
            continue
        if all(got.values()) and isinstance(returned, nn.Module) and returned is not model:
            return wrong("the model you were given still trains everywhere: change its parameters in place "
                         "(`p.requires_grad = False`); there is no need to return a copy")
        wrong_names = [name for name in wanted if got[name] != wanted[name]]
        if all(got.values()):
            return wrong(f"on {description} nothing was frozen: set `requires_grad = False` on the body's "
                         "parameters")
        head_names = {name for name, p in model.named_parameters() if any(p is q for q in head.parameters())}
        before = " (switch them on explicitly, whatever they were)" if "frozen before" in description else ""
        if any(name in head_names for name in wrong_names):
            return wrong(f"on {description} the head does not train: the new head is the one part that must "
                         f"learn, so set `requires_grad = True` on every parameter of `head`{before}")
        batchnorm = {name for name, flag in wanted.items() if flag and name not in head_names}
        if all(name in batchnorm for name in wrong_names):
            return wrong(f"on {description} the BatchNorm layers are frozen: they keep training (their few "
                         f"numbers adapt the features to the new photos), so skip `nn.BatchNorm2d` modules{before}")
        if all(name.endswith("bias") for name in wrong_names):
            return wrong(f"on {description} the biases of the body still train: freeze every parameter of a "
                         "layer, its `bias` as well as its `weight`")
        return wrong(f"on {description} these parameters are not as they should be: {', '.join(wrong_names[:3])}"
                     f"{' ...' if len(wrong_names) > 3 else ''}. `ex.hint(1)` shows the way.")
    return right("the body is frozen, its BatchNorm layers and the head train: that is what `freeze` does.")


# --- Exercise 2: the rates fine_tune gives each layer group ---------------------------------------------

EX2_BASE_LR = 1e-3
EX2_GROUPS = 3          # a ResNet: conv1 .. layer2, layer3 .. layer4, fc
EX2_LR_MULT = 100.0     # fine_tune's default


def _geometric(low: float, high: float, n: int) -> list[float]:
    """``n`` rates from ``low`` to ``high``, each the same factor above the one before."""
    return [low * (high / low) ** (i / (n - 1)) for i in range(n)]


def _fine_tune_rates(base_lr: float) -> tuple[list[float], list[float]]:
    """The rates of the three groups in fine_tune's two phases, worked out from its recipe."""
    phase1 = [base_lr / 10] * (EX2_GROUPS - 1) + [base_lr]                 # slice(base_lr)
    top = base_lr / 2
    return phase1, _geometric(top / EX2_LR_MULT, top, EX2_GROUPS)          # slice(top / lr_mult, top)


@lesson.exercise(
    2,
    hint="Phase 1 passes `lr=slice(base_lr)`: the head gets base_lr and every body group a tenth of it. "
         "Phase 2 halves base_lr and passes `slice(half / 100, half)`: the head gets half, the first group a "
         "hundredth of that, the middle group the rate in between on a log scale. `spread_lrs(lr, 3)` "
         "turns any of these into the three numbers.",
    solution="""
base_lr = 1e-3
phase1 = spread_lrs(slice(base_lr), 3)                          # head base_lr, body groups a tenth
phase2 = spread_lrs(slice(base_lr / 2 / 100, base_lr / 2), 3)   # half of base_lr, spread over 100x
answer = (phase1, phase2)
print("phase 1:", [f"{lr:.0e}" for lr in phase1], " phase 2:", [f"{lr:.0e}" for lr in phase2])
ex.check(2, answer)
""",
)
def check_rates(answer) -> Result:
    """Exercise 2: the learning rates of the three layer groups in each phase of fine_tune(base_lr=1e-3)."""
    values = as_array(answer)
    if values is None or values.shape != (2, EX2_GROUPS):
        return wrong("give two lists of three rates, (phase 1, phase 2), each ordered from the first layer "
                     "group (conv1 .. layer2) to the head, e.g. answer = ([1e-5, 1e-5, 1e-4], [1e-6, 1e-5, 1e-4])")
    phase1, phase2 = _fine_tune_rates(EX2_BASE_LR)
    ok1, ok2 = close(values[0], phase1, rtol=1e-3), close(values[1], phase2, rtol=1e-3)
    if ok1 and ok2:
        return right("phase 1: the head at 1e-3 and the body's BatchNorm at 1e-4; phase 2: 5e-6, 5e-5, 5e-4, "
                     "a tenfold step from each group to the next.")
    hints = []
    if not ok1:
        if close(values[0], [EX2_BASE_LR] * EX2_GROUPS, rtol=1e-3):
            hints.append("phase 1 gives the body a tenth of base_lr, not all of it: `slice(base_lr)` means "
                         "base_lr / 10 for each body group (only their BatchNorm layers train with it)")
        elif close(values[0][:-1], [0.0] * (EX2_GROUPS - 1)) and close(values[0][-1], EX2_BASE_LR, rtol=1e-3):
            hints.append("in phase 1 the body's groups do get a rate, a tenth of base_lr: their BatchNorm "
                         "layers train with it")
        elif close(values[0][::-1], phase1, rtol=1e-3):
            hints.append("phase 1 is in reverse order: the first group (conv1 .. layer2) comes first, the head last")
        else:
            hints.append("phase 1 is not right: fine_tune passes `lr=slice(base_lr)` there")
    if not ok2:
        top = EX2_BASE_LR / 2
        if close(values[1], _geometric(EX2_BASE_LR / EX2_LR_MULT, EX2_BASE_LR, EX2_GROUPS), rtol=1e-3):
            hints.append("phase 2 starts from half of base_lr: fine_tune halves it once the body is unfrozen")
        elif close(values[1], [top / EX2_LR_MULT, (top / EX2_LR_MULT + top) / 2, top], rtol=1e-3):
            hints.append("phase 2's rates are spread on a log scale (each group the same factor, 10x, above "
                         "the one before), not evenly")
        elif close(values[1][::-1], phase2, rtol=1e-3):
            hints.append("phase 2 is in reverse order: the first group gets the smallest rate, the head the largest")
        elif close(values[1], [top] * EX2_GROUPS, rtol=1e-3):
            hints.append("phase 2 gives each group its own rate (discriminative learning rates), from "
                         "top / 100 for the first group to top = base_lr / 2 for the head")
        else:
            hints.append("phase 2 is not right: fine_tune passes `slice(base_lr / 2 / 100, base_lr / 2)` there")
    return wrong("; ".join(hints))


# --- Exercise 3: transfer with two labels per digit ---------------------------------------------------

EX3_CANVAS = 16           # the lesson's digits sit on a 16 x 16 canvas
EX3_RIGHT_BELOW = 0.5     # an error this low with 10 labelled digits takes a transferred body (see the lesson)
EX3_GUESSING = 0.7        # five classes: guessing gets 80% wrong


def _new_task() -> tuple[torch.Tensor, torch.Tensor]:
    """The lesson's new task, made afresh: the digits 5-9 on the canvas, labelled 0-4."""
    images, labels = digit_images()
    images = on_canvas(images, size=EX3_CANVAS)
    new = labels >= 5
    return images[new], labels[new] - 5


@lesson.exercise(
    3,
    hint="Pick the labelled digits with `n_per_class(y_new, 2, seed=1)`, then do what `transferred` does: a copy "
         "of `pretrained`, a new `nn.Linear(64, 5)` head, `fine_tune` on a loader of those 10 digits. Pass the "
         "trained model to the check.",
    solution="""
few = n_per_class(y_new, 2, seed=1)        # 2 labelled digits of each of 5, 6, 7, 8, 9
model = transferred(few, seed=1)
print(f"transferred: {digit_error(model, few):.0%} wrong,",
      f"from scratch: {digit_error(from_scratch(few, seed=1), few):.0%} wrong, on the other digits 5-9")
ex.check(3, model)
""",
)
def check_two_labels(model) -> Result:
    """Exercise 3: a model for the digits 5-9 trained on 2 labels per digit must beat what scratch can do."""
    if not isinstance(model, nn.Module):
        return wrong("pass the trained network itself (an nn.Module), e.g. `ex.check(3, model)`")
    x, y = _new_task()
    model = copy.deepcopy(model).cpu().eval()
    try:
        with torch.inference_mode():
            outputs = run_learner_code(model, x)
    except LearnerCodeError as e:
        said = str(e).replace("your function ", "")
        return wrong(f"the network failed on the lesson's 16 x 16 canvas digits ({said}). Was it made for the "
                     "8 x 8 digits? Use `make_cnn` and the lesson's `x_new`.")
    if not isinstance(outputs, torch.Tensor) or outputs.dim() != 2 or outputs.shape[0] != len(x):
        return wrong("the network should give one row of scores per picture; did you pass the right model?")
    if outputs.shape[1] != 5:
        return wrong(f"the network gives {outputs.shape[1]} scores per picture; the new task has 5 classes "
                     "(the digits 5-9 as labels 0-4): its head should be `nn.Linear(64, 5)`")
    error = (outputs.argmax(dim=1) != y).float().mean().item()
    if error < EX3_RIGHT_BELOW:
        return right(f"{error:.0%} wrong on the {len(x)} digits 5-9 from 10 labels: the body learned on 0-4 "
                     "carries over.")
    if error >= EX3_GUESSING:
        return wrong(f"{error:.0%} wrong, about as bad as guessing: was the model trained on the digits 5-9? "
                     "(`pretrained` itself still has its head for 0-4; `fine_tune` trains the model in place)")
    return wrong(f"{error:.0%} wrong: that is what a network trained from scratch on 10 digits gets. "
                 "Start from the pretrained body (a copy of `pretrained` with a new head) and fine-tune it.")


check, hint, solution = lesson.check, lesson.hint, lesson.solution
