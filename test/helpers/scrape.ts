/** The sum of a metric's samples in a process's /metrics whose labels include `labels`. */
export async function scrapeMetric(baseUrl: string, name: string, labels = ''): Promise<number> {
  const text = await (await fetch(`${baseUrl}/metrics`)).text();
  let sum = 0;
  for (const [, sampleLabels, value] of text.matchAll(/^(\w+\{[^}]*\}) (\S+)$/gm)) {
    if (sampleLabels.startsWith(`${name}{`) && sampleLabels.includes(labels)) sum += Number(value);
  }
  return sum;
}
