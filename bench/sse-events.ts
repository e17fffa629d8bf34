/**
 * The JSON events of a server-sent-event response, as they arrive: the `data: {...}` lines of a
 * streaming completion, parsed (the final `data: [DONE]` and anything else are skipped).
 */
export async function* sseEvents<T>(response: Response): AsyncGenerator<T> {
  const reader = response.body!.getReader();
  const dec = new TextDecoder();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += dec.decode(value, { stream: true });
    let i: number;
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const event = buf.slice(0, i);
      buf = buf.slice(i + 2);
      if (event.startsWith('data: {')) yield JSON.parse(event.slice(6)) as T;
    }
  }
}
