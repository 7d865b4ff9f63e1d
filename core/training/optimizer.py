"""ONadam and the epoch-step learning-rate schedule of the training loop.

Submodules are imported directly: a dist_sync parameter server unpickles
these classes while `mxnet` itself is still being imported.
"""
from mxnet import ndarray as nd
from mxnet.lr_scheduler import LRScheduler
from mxnet.optimizer import Optimizer


@Optimizer.register
class ONadam(Optimizer):
    """Nadam with the warming momentum schedule.

    The gradient is `grad * rescale_grad + wd * weight` (the original's
    operator-precedence bug multiplied instead), then clipped to
    +-clip_gradient (5 by default). The momentum-schedule product is kept per
    parameter.
    """

    def __init__(self, learning_rate=0.001, beta1=0.9, beta2=0.999, epsilon=1e-8,
                 schedule_decay=0.004, clip_gradient=5.0, **kwargs):
        super(ONadam, self).__init__(learning_rate=learning_rate, clip_gradient=clip_gradient,
                                     **kwargs)
        self.beta1, self.beta2 = beta1, beta2
        self.epsilon, self.schedule_decay = epsilon, schedule_decay
        self.m_schedule = {}

    def create_state(self, index, weight):
        return (nd.zeros(weight.shape, weight.context, dtype=weight.dtype),
                nd.zeros(weight.shape, weight.context, dtype=weight.dtype))

    def update(self, index, weight, grad, state):
        self._update_count(index)
        t = self._index_update_count[index]
        lr, wd = self._get_lr(index), self._get_wd(index)
        grad = grad * self.rescale_grad + wd * weight
        if self.clip_gradient is not None:
            grad = nd.clip(grad, -self.clip_gradient, self.clip_gradient)
        momentum_t = self.beta1 * (1.0 - 0.5 * 0.96 ** (t * self.schedule_decay))
        momentum_next = self.beta1 * (1.0 - 0.5 * 0.96 ** ((t + 1) * self.schedule_decay))
        schedule = self.m_schedule.get(index, 1.0) * momentum_t
        self.m_schedule[index] = schedule
        schedule_next = schedule * momentum_next
        mean, var = state
        mean[:] = self.beta1 * mean + (1.0 - self.beta1) * grad
        var[:] = self.beta2 * var + (1.0 - self.beta2) * grad * grad
        grad_prime = grad / (1.0 - schedule)
        mean_prime = mean / (1.0 - schedule_next)
        var_prime = var / (1.0 - self.beta2 ** t)
        mean_bar = (1.0 - momentum_t) * grad_prime + momentum_next * mean_prime
        weight[:] -= lr * mean_bar / (nd.sqrt(var_prime) + self.epsilon)


class EpochStepSchedule(LRScheduler):
    """base_lr x 0.2 for each step boundary reached, except the last, which
    ends training. Boundaries are given in epochs (an epoch is `records`
    samples, as the original counts it: records seen / records, so `exf`
    copies do not stretch the schedule) or, with `in_steps`, in steps."""

    def __init__(self, base_lr, epoch_steps, records, batch_size, factor=0.2, in_steps=False):
        super(EpochStepSchedule, self).__init__(base_lr=base_lr)
        self.records, self.batch_size = max(1, records), batch_size
        self.factor = factor
        self.boundaries = sorted(epoch_steps) if in_steps else [
            -(-e * self.records // batch_size) for e in sorted(epoch_steps)]

    def epoch(self, step):
        """Epochs completed after `step` batches (fractional)."""
        return step * self.batch_size / float(self.records)

    def end_step(self):
        """The step at which the last boundary is reached."""
        return self.boundaries[-1]

    def __call__(self, num_update):
        """The lr of update `num_update` (1 for the first): lowered for the
        boundaries passed before it, as the original lowers it after a batch."""
        reached = sum(1 for b in self.boundaries[:-1] if num_update - 1 >= b)
        return self.base_lr * self.factor ** reached
