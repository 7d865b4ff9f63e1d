"""Whether one model is really better than another on the same images: the
paired difference of their per-image NMEs, a bootstrap confidence interval
of its mean, and the Wilcoxon signed-rank test.

A pair of evaluations is compared image by image (matched by record key),
so that the hardness of each image cancels out: the question is the mean of
`b - a` over the images, not the difference of two means with their own
spreads.
"""
import collections

import numpy as np

Paired = collections.namedtuple('Paired', 'mean low high level resamples seed p wins_a wins_b '
                                          'ties images')


class MatchError(ValueError):
    """Two evaluations that are not of the same images."""


def matched(a, b, where='the two evaluations'):
    """(keys, a's values, b's values) of two {record key: value} of the same
    images; MatchError naming what differs."""
    if set(a) != set(b):
        only_a, only_b = sorted(set(a) - set(b)), sorted(set(b) - set(a))
        raise MatchError('%s are not of the same images (%d and %d records; %s): compare '
                         'evaluations of the same record set' % (
                             where, len(a), len(b), '; '.join(w for w in (
                                 'records %s only in the first' % only_a[:5] if only_a else '',
                                 'records %s only in the second' % only_b[:5] if only_b
                                 else '') if w)))
    keys = sorted(a)
    return keys, np.array([a[k] for k in keys], float), np.array([b[k] for k in keys], float)


def bootstrap_mean(values, resamples=10000, seed=0, level=0.95):
    """(mean, low, high): the mean of `values` and the percentile bootstrap
    interval at `level` of `resamples` resamples with replacement, drawn by
    numpy's default generator seeded with `seed`."""
    values = np.asarray(values, dtype=np.float64)
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(resamples, len(values)))].mean(axis=1)
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(values.mean()), float(low), float(high)


def wilcoxon_p(differences):
    """The two-sided p-value of the Wilcoxon signed-rank test that the
    paired differences are centred on 0 (SciPy's; 1.0 when all are 0)."""
    from scipy.stats import wilcoxon
    differences = np.asarray(differences, dtype=np.float64)
    if not np.any(differences):
        return 1.0
    return float(wilcoxon(differences).pvalue)


def paired(a, b, resamples=10000, seed=0, level=0.95):
    """Paired of per-image NMEs `a` and `b` (same images, same order): the
    mean of b - a with its bootstrap interval, the Wilcoxon p-value, and on
    how many images each model is better (lower)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    diff = b - a
    mean, low, high = bootstrap_mean(diff, resamples, seed, level)
    return Paired(mean, low, high, level, resamples, seed, wilcoxon_p(diff),
                  int(np.sum(a < b)), int(np.sum(b < a)), int(np.sum(a == b)), len(a))


def in_words(result, name_a, name_b, alpha=0.05):
    """One sentence saying what a Paired result means."""
    significant = result.p < alpha and not result.low <= 0 <= result.high
    better = name_b if result.mean < 0 else name_a
    return ('%s vs %s: mean paired difference %+.3f%% NME (%d%% CI %+.3f to %+.3f, %d bootstrap '
            'resamples, seed %d); Wilcoxon signed-rank p = %.3g; %s better on %d images, %s on '
            '%d (%d ties); %s' % (
                name_b, name_a, result.mean, round(100 * result.level), result.low, result.high,
                result.resamples, result.seed, result.p, name_a, result.wins_a, name_b,
                result.wins_b, result.ties,
                ('%s is better, significantly at the %g%% level' % (better, 100 * alpha))
                if significant else ('the difference is not significant at the %g%% level'
                                     % (100 * alpha))))


def against_first(results, labels, resamples=10000, seed=0, level=0.95, alpha=0.05):
    """[(sentence, Paired)] of each evaluation of one set (load_result's,
    named by `labels`) against the first, image by image, matched by record
    key; MatchError when they are not of the same images."""
    first = dict(zip(results[0]['keys'], results[0]['errors']))
    found = []
    for r, label in zip(results[1:], labels[1:]):
        _, a, b = matched(first, dict(zip(r['keys'], r['errors'])),
                          '%s and %s on %s' % (labels[0], label, r['summary']['dataset']))
        result = paired(a, b, resamples, seed, level)
        found.append((in_words(result, labels[0], label, alpha), result))
    return found
