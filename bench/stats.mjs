// Statistics the benchmarks share: medians, and how sure a ratio of two medians is.

/** The q-quantile (0 to 1) of an ascending list, interpolated between neighbours. */
export function quantile (sorted, q) {
  const i = (sorted.length - 1) * q
  const lo = Math.floor(i)
  return sorted[lo] + (sorted[Math.ceil(i)] - sorted[lo]) * (i - lo)
}

export const median = (list) => quantile([...list].sort((a, b) => a - b), 0.5)

/**
 * median(a) / median(b) and its 95% interval, from 2,000 resamplings of whole rounds: a[i] and
 * b[i] ran in the same round, and keeping them paired keeps the noise they shared. Seeded, so
 * the same data prints the same interval. Formatted as `1.039 [1.024, 1.053]`.
 */
export function ratio (a, b) {
  if (a.length !== b.length) throw new Error(`ratio of ${a.length} rounds against ${b.length}`)
  let seed = 1
  const random = () => { seed = (Math.imul(seed, 1103515245) + 12345) >>> 0; return seed / 2 ** 32 }
  const ratios = []
  for (let r = 0; r < 2000; r++) {
    const picks = a.map(() => Math.floor(random() * a.length))
    ratios.push(median(picks.map((i) => a[i])) / median(picks.map((i) => b[i])))
  }
  ratios.sort((x, y) => x - y)
  const value = median(a) / median(b)
  const [lo, hi] = [quantile(ratios, 0.025), quantile(ratios, 0.975)]
  return { value, lo, hi, text: `${value.toFixed(3)} [${lo.toFixed(3)}, ${hi.toFixed(3)}]` }
}
