// The audit arithmetic the pages explain before anything is drawn; the same formulas as labeling/stats.py
// (the server decides, these only explain).

export const Z95 = 1.959963984540054;

export function wilson(errors, n, z = Z95) {
  if (n === 0) return [0, 1];
  const p = errors / n;
  const denom = 1 + (z * z) / n;
  const centre = (p + (z * z) / (2 * n)) / denom;
  const half = (z * Math.sqrt((p * (1 - p)) / n + (z * z) / (4 * n * n))) / denom;
  return [Math.max(0, centre - half), Math.min(1, centre + half)];
}

// Audits with no error needed before Wilson's upper bound reaches maxErrorRate: z²(1 − p)/p.
export function cleanAuditsNeeded(maxErrorRate, z = Z95) {
  return Math.ceil((z * z * (1 - maxErrorRate)) / maxErrorRate - 1e-9);
}

// The most errors a sample of n may hold and still be accepted; -1 when even a clean one is not.
export function errorsAllowed(n, maxErrorRate) {
  let k = -1;
  while (k + 1 <= n && wilson(k + 1, n)[1] <= maxErrorRate) k += 1;
  return wilson(0, n)[1] <= maxErrorRate ? Math.max(k, 0) : -1;
}

export const percent = (x, digits = 1) => (x == null ? "–" : `${Number((x * 100).toFixed(digits))}%`);

// One sentence on what an audit of `n` answers can show against the acceptance line.
export function auditSentence(n, maxErrorRate) {
  const clean = cleanAuditsNeeded(maxErrorRate);
  const allowed = errorsAllowed(n, maxErrorRate);
  if (allowed < 0) {
    return `With ${n} audited answer${n === 1 ? "" : "s"} a batch can never pass ${percent(maxErrorRate)}: ` +
      `${clean} error-free audits are needed (the Wilson 95% upper bound of the error rate must fall to ${percent(maxErrorRate)}).`;
  }
  return `An audit of ${n} passes with up to ${allowed} error${allowed === 1 ? "" : "s"} ` +
    `(the Wilson 95% upper bound must stay at or under ${percent(maxErrorRate)}; ${clean} error-free audits are the least that can pass).`;
}
