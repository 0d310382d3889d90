"""The exercises of lesson 1 (neurons, gradient descent, small networks), with their checks, hints and solutions.

1. the largest learning rate at which gradient descent on section 5's loss still converges,
   as a function of the data (checked on fresh data);
2. a network with one hidden layer of 2 neurons, trained on the moons (checked on fresh moons);
3. a stack of ``nn.Linear`` layers without activations, collapsed into one ``nn.Linear``
   (checked on fresh random stacks): why a network needs its ReLUs.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from course_utils.exercises import LearnerCodeError, Lesson, Result, as_array, not_done, right, run_learner_code, wrong

lesson = Lesson(1)


# --- Exercise 1: the largest learning rate that converges -------------------------------------------

def _fresh_inputs(seed: int | None = None) -> torch.Tensor:
    """Inputs unlike the lesson's ``linspace(-1, 1, 50)``: another range, another count, random."""
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.uniform(-2.0, 1.5, size=int(rng.integers(30, 80)))).float()


@lesson.exercise(
    1,
    hint="Write one step of gradient descent with the gradient of section 5: w_new = w - lr * mean(2 (w x - y) x). "
         "Measured from the best weight w*, this is (w_new - w*) = (1 - 2 * lr * mean(x^2)) * (w - w*). The steps "
         "shrink the distance while that factor is between -1 and 1.",
    solution="""
def largest_rate(xs):
    # each step multiplies the distance to the best weight by (1 - 2 * lr * mean(x^2)),
    # which stays above -1 while lr < 1 / mean(x^2)
    return 1 / (xs ** 2).mean().item()

lr_max = largest_rate(xs)
for lr in [0.95 * lr_max, 1.05 * lr_max]:
    print(f"rate {lr:.3f}: w after 100 steps = {descend(lr, steps=100)[-1]:.4g}")
ex.check(1, largest_rate)
""",
)
def check_largest_rate(answer) -> Result:
    """Exercise 1: a function ``largest_rate(xs)`` giving 1 / mean(xs ** 2) (for ``loss = mean((w x - y) ** 2)``)."""
    if not callable(answer):
        return wrong("write it as a function of the inputs: def largest_rate(xs): return ..., so that it works "
                     "for any data, and hand in the function (ex.check(1, largest_rate))")
    xs = _fresh_inputs()
    value = run_learner_code(answer, xs.clone())
    if value is None:
        return not_done("your function returns None: finish its body with return ...")
    got = as_array(value)
    if got is None or got.size != 1:
        return wrong(f"your function should return one number (a rate), it returned {type(value).__name__}")
    got = float(got.reshape(()))
    square_mean = float((xs.double() ** 2).mean())
    expected = 1 / square_mean
    if np.isclose(got, expected, rtol=1e-3):
        return right(f"for these {len(xs)} fresh inputs the limit is {expected:.4f}: below it each step shrinks the "
                     "distance to the best weight, above it the distance grows every step.")
    lesson_inputs = torch.linspace(-1, 1, 50)
    mistakes = [
        (2 / square_mean, "twice too large: the gradient of (w x - y)^2 has a factor 2, 2 (w x - y) x, and it "
                          "counts too"),
        (1 / (2 * square_mean), "that is the rate that lands on the best weight in ONE step (the factor is 0). "
                                "Larger rates converge too: each step jumps past the best weight, but by less "
                                "than the step before, as long as the factor stays above -1"),
        (1 / float((xs.double() ** 2).sum()), "use the mean of x^2, not the sum: the loss is a mean"),
        (square_mean, "that is mean(x^2) itself: the rate is its reciprocal"),
        (1 / float(xs.double().abs().mean()), "square the inputs: mean(x^2), not the mean of |x|"),
        (1 / float(xs.double().mean()) ** 2, "the mean of the squares, mean(x^2), not the square of the mean"),
        (1 / float((lesson_inputs ** 2).mean()), "right for the lesson's xs, but your function ignores the inputs "
                                                 "it is given: compute it from its argument"),
    ]
    for value, why in mistakes:
        if np.isclose(got, value, rtol=1e-3):
            return wrong(why)
    return wrong(f"not {got:.4g}: for these inputs a rate of {got:.4g} does not sit at the edge between "
                 "converging and diverging. `ex.hint(1)` shows how to find the edge.")


# --- Exercise 2: one hidden layer of 2 neurons --------------------------------------------------------

def make_moons(n: int, noise: float, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Two interleaving half-moons, as lesson 1 draws them: points ``n x 2`` and labels 0/1 (the checker's own)."""
    angle = rng.uniform(0, np.pi, n)
    label = rng.integers(0, 2, n)
    x = np.where(label == 0, np.cos(angle), 1 - np.cos(angle))
    y = np.where(label == 0, np.sin(angle), 0.5 - np.sin(angle))
    points = np.stack([x, y], axis=1) + rng.normal(0, noise, (n, 2))
    return torch.from_numpy(points).float(), torch.from_numpy(label).float()


def _accuracy(model: nn.Module, points: torch.Tensor, labels: torch.Tensor) -> float:
    """The fraction of points the model puts on the right side (score > 0 means class 1), run time-boxed."""
    with torch.no_grad():
        scores = run_learner_code(model, points)
    scores = torch.as_tensor(scores).detach().reshape(-1)  # where it ran in a thread, no_grad did not reach it
    return float(((scores > 0).float() == labels).float().mean())


def _straight_line_accuracy(points: torch.Tensor, labels: torch.Tensor) -> float:
    """What a straight line gets on these moons: the line fitted by least squares to labels -1 / +1.

    (Not quite the best line there is, but within a point or two of logistic regression on the moons,
    and instant.)
    """
    design = np.column_stack([points.numpy(), np.ones(len(points))])
    coefficients, *_ = np.linalg.lstsq(design, 2 * labels.numpy() - 1, rcond=None)
    return float(((design @ coefficients > 0) == (labels.numpy() == 1)).mean())


ACTIVATIONS = (nn.ReLU, nn.LeakyReLU, nn.Tanh, nn.Sigmoid, nn.GELU, nn.ELU, nn.SiLU)


@lesson.exercise(
    2,
    hint="The network is nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 1)): 2 inputs, 2 hidden neurons, "
         "1 score. Train it with the lesson's train(model, steps), draw it with draw_boundary, and hand in the "
         "trained network.",
    solution="""
torch.manual_seed(env.seed)
tiny = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 1))   # one hidden layer of 2 neurons
train(tiny, steps)
fig, ax = plt.subplots(figsize=(4, 3.2))
draw_boundary(tiny, ax, "one hidden layer of 2 neurons")
plt.show()
ex.check(2, tiny)
""",
)
def check_tiny_network(answer) -> Result:
    """Exercise 2: a trained network 2 -> 2 (ReLU) -> 1, which can only bend its boundary where a neuron switches."""
    if not isinstance(answer, nn.Module):
        return wrong("hand in the trained network itself (an nn.Module such as your nn.Sequential)")
    linears = [m for m in answer.modules() if isinstance(m, nn.Linear)]
    activations = [m for m in answer.modules() if isinstance(m, ACTIVATIONS)]
    if len(linears) > 2:
        return wrong(f"it has {len(linears)} Linear layers, so {len(linears) - 1} hidden layers: the exercise asks "
                     "for ONE hidden layer of 2 neurons, nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 1)")
    if len(linears) < 2:
        return wrong("it needs a hidden layer: nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 1)")
    first, last = linears
    if first.in_features != 2 or last.out_features != 1:
        return wrong("it should take the 2 coordinates of a point and give 1 score: "
                     f"it takes {first.in_features} and gives {last.out_features}")
    if first.out_features != 2:
        return wrong(f"its hidden layer has {first.out_features} neurons, not 2")
    if not activations:
        return wrong("there is no ReLU between the two layers: without it, two Linear layers are one straight "
                     "line (exercise 3 shows why)")
    points, labels = make_moons(2000, noise=0.15, rng=np.random.default_rng())
    accuracy = _accuracy(answer, points, labels)
    if accuracy < 0.6:
        return wrong(f"it gets {accuracy:.0%} of fresh points right, no better than guessing. Trained? Then both "
                     "hidden neurons may have 'died': a ReLU that gives 0 for every point passes no gradient, so "
                     "they never recover. Build it again from another seed (torch.manual_seed(1)) and train again")
    if accuracy < 0.8:
        return wrong(f"it gets only {accuracy:.0%} of fresh points right: train it (train(tiny, steps)) before "
                     "handing it in")
    line = _straight_line_accuracy(points, labels)
    return right(f"{accuracy:.0%} of 2,000 fresh points, close to a straight line's {line:.0%}: its boundary "
                 "is straight pieces that can only bend where one of its 2 neurons switches on or off, too few "
                 "bends to follow the moons (section 7's 16 + 16 neurons can).")


# --- Exercise 3: without ReLU, layers collapse into one ---------------------------------------------

def _random_stack(widths: list[int], seed: int) -> nn.Sequential:
    """Linear layers of these widths, no activations, random weights and (non-zero) biases."""
    torch.manual_seed(seed)
    layers = [nn.Linear(a, b) for a, b in zip(widths, widths[1:])]
    with torch.no_grad():
        for layer in layers:
            layer.weight.normal_(0, 0.7)
            layer.bias.normal_(0, 1)
    return nn.Sequential(*layers)


def _true_collapse(model: nn.Sequential) -> tuple[torch.Tensor, torch.Tensor]:
    """(weight, bias) of the one Linear layer that computes what ``model`` computes, in float64."""
    first = model[0]
    weight = torch.eye(first.in_features, dtype=torch.float64)
    bias = torch.zeros(first.in_features, dtype=torch.float64)
    for layer in model:
        w, b = layer.weight.detach().double(), layer.bias.detach().double()
        weight, bias = w @ weight, w @ bias + b
    return weight, bias


def _as_linear(result) -> tuple[torch.Tensor, torch.Tensor] | str:
    """(weight, bias) of the learner's single layer, or what is wrong with it."""
    if isinstance(result, nn.Sequential) or (isinstance(result, nn.Module) and not isinstance(result, nn.Linear)):
        return "it returns a network of several layers: return ONE nn.Linear that does the same"
    if not isinstance(result, nn.Linear):
        return (f"it returns a {type(result).__name__}: build one nn.Linear(in, out), put the weight and bias you "
                "worked out into it (with torch.no_grad(): single.weight.copy_(...)) and return it")
    bias = result.bias if result.bias is not None else torch.zeros(result.out_features)
    return result.weight.detach().double().cpu(), bias.detach().double().cpu()


@lesson.exercise(
    3,
    hint="Each layer computes W x + b. Put the first layer's output into the second: W2 (W1 x + b1) + b2 = "
         "(W2 W1) x + (W2 b1 + b2): again one weight matrix and one bias. Keep going layer by layer (a loop over "
         "the model), then copy the result into a fresh nn.Linear.",
    solution="""
def collapse(model):
    weight = torch.eye(model[0].in_features)       # start from "do nothing": y = I x + 0
    bias = torch.zeros(model[0].in_features)
    for layer in model:                            # one more layer: W (weight x + bias) + b
        weight, bias = layer.weight @ weight, layer.weight @ bias + layer.bias
    single = nn.Linear(weight.shape[1], weight.shape[0])
    with torch.no_grad():
        single.weight.copy_(weight)
        single.bias.copy_(bias)
    return single

torch.manual_seed(env.seed)
no_relu = nn.Sequential(nn.Linear(2, 16), nn.Linear(16, 16), nn.Linear(16, 1))   # make_net without nn.ReLU()
train(no_relu, steps)
print("the trained network and its single layer agree:",
      torch.allclose(no_relu(X_valid), collapse(no_relu)(X_valid), atol=1e-4))
fig, ax = plt.subplots(figsize=(4, 3.2))
draw_boundary(no_relu, ax, "three Linear layers, no ReLU")
plt.show()
ex.check(3, collapse)
""",
)
def check_collapse(answer) -> Result:
    """Exercise 3: ``collapse(model)`` turns any stack of nn.Linear layers into one nn.Linear computing the same."""
    if not callable(answer) or isinstance(answer, nn.Module):
        return wrong("hand in your function (def collapse(model): ...), not a network: ex.check(3, collapse)")
    stacks = [[2, 16, 16, 1], [2, 7, 1], [2, 5, 3, 4, 1]]  # the lesson's shape first, then other depths
    for number, widths in enumerate(stacks):
        model = _random_stack(widths, seed=int(np.random.default_rng().integers(1 << 30)))
        try:
            result = run_learner_code(answer, model)
        except LearnerCodeError as e:
            if number == 0:
                raise  # check() turns it into a hint
            return wrong(f"right for three layers, but for {len(widths) - 1} layers {e}: loop over the model's "
                         "layers, so that it works for any number of them")
        if result is None:
            return not_done("your function returns None: finish it with return single")
        found = _as_linear(result)
        if isinstance(found, str):
            return wrong(found)
        weight, bias = found
        true_weight, true_bias = _true_collapse(model)
        if weight.shape != true_weight.shape:
            return wrong(f"its weight has shape {tuple(weight.shape)}; for {widths[0]} inputs and {widths[-1]} output "
                         f"it should be {tuple(true_weight.shape)} (out x in, as nn.Linear stores it)")
        weight_ok = torch.allclose(weight, true_weight, rtol=1e-4, atol=1e-4)
        bias_ok = torch.allclose(bias, true_bias, rtol=1e-4, atol=1e-4)
        if weight_ok and bias_ok:
            continue
        if number > 0:  # the lesson's three-layer stack passed, this depth did not
            return wrong(f"right for three layers, not for {len(widths) - 1}: loop over the model's layers, so "
                         "that it works for any number of them")
        if weight_ok and torch.allclose(bias, model[-1].bias.detach().double(), atol=1e-4):
            return wrong("the weight is right, the bias is only the last layer's: the earlier biases pass through "
                         "the later layers too (b1 is multiplied by W2 and W3)")
        if weight_ok:
            return wrong("the weight is right, the bias is not: the bias b of each layer is multiplied by every "
                         "later layer's weight, W2 (W1 x + b1) + b2 = W2 W1 x + (W2 b1 + b2)")
        return wrong("the single layer does not compute what the stack computes: multiply the weights in the order "
                     "the layers run, the last one on the left (W3 @ W2 @ W1)")
    return right("W3 W2 W1 x + (W3 W2 b1 + W3 b2 + b3) is one Linear layer: without activations a deep network is a "
                 "single straight-line rule, so its decision boundary is one straight line however deep it is.")


check, hint, solution = lesson.check, lesson.hint, lesson.solution
