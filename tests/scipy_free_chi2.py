"""The chi-square survival function without scipy: P(X > x) for k degrees of freedom (series of the
regularized upper incomplete gamma function), enough for the tests' goodness-of-fit checks."""
import math


def chi2_sf(x: float, k: int) -> float:
    """P(chi2_k > x) = Q(k/2, x/2)."""
    a, z = k / 2.0, x / 2.0
    if z <= 0:
        return 1.0
    if z < a + 1:   # lower series: P(a, z) = z^a e^-z / Gamma(a+1) * sum z^n / ((a+1)...(a+n))
        term = total = 1.0 / a
        n = 1
        while abs(term) > 1e-15 * abs(total):
            term *= z / (a + n)
            total += term
            n += 1
        return max(0.0, 1.0 - total * math.exp(-z + a * math.log(z) - math.lgamma(a)))
    # continued fraction for Q(a, z) (Lentz)
    tiny = 1e-300
    b, c, d = z + 1 - a, 1 / tiny, 1 / (z + 1 - a)
    h = d
    for i in range(1, 500):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        h *= d * c
        if abs(d * c - 1) < 1e-15:
            break
    return h * math.exp(-z + a * math.log(z) - math.lgamma(a))
