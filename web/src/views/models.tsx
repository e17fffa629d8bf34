/** Models: what is loaded (architecture, quantization, context, memory), and what is stored on disk. */
import type { ModelInfo, StoredModelInfo } from '../../../src/dashboard/wire.js';
import { bytes, count } from '../format';

/** The models view. */
export function ModelsView({ model, stored }: { model: ModelInfo | null; stored?: readonly StoredModelInfo[] | null }) {
  if (!model) return <p class="hint">Waiting for the live feed…</p>;
  const rows: [string, string][] = [
    ['Name', model.id],
    ['State', model.state],
    ['Architecture', model.architecture ?? 'n/a'],
    ['Quantization', model.quantization ?? 'n/a'],
    ['Parameters', count(model.parameters)],
    ['Layers', model.layers === null ? 'n/a' : String(model.layers)],
    ['Context (trained)', model.contextTrain === null ? 'n/a' : String(model.contextTrain)],
    ['Context per slot', model.contextPerSlot === null ? 'n/a' : String(model.contextPerSlot)],
    ['Slots', model.slots === null ? 'n/a' : String(model.slots)],
    ['File size', bytes(model.fileBytes)],
    ['KV cache', bytes(model.kvBytes)],
    ['Resident memory', bytes(model.residentBytes)],
    ['Use', model.embeddingOnly ? 'embeddings only' : 'chat, completions, embeddings'],
  ];
  return (
    <div class="models">
      <table>
        <caption>Loaded model</caption>
        <tbody>
          {rows.map(([k, v]) => (
            <tr key={k}>
              <th scope="row">{k}</th>
              <td data-testid={`model-${k.toLowerCase().replace(/\W+/g, '-')}`}>{v}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {stored && (
        <div class="table-wrap">
          <table data-testid="stored-models">
            <caption>On disk ({stored.length})</caption>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Size</th>
                <th scope="col">Quantization</th>
                <th scope="col">Architecture</th>
                <th scope="col">Pulled</th>
              </tr>
            </thead>
            <tbody>
              {stored.length === 0 && (
                <tr>
                  <td colSpan={5} class="muted">
                    None yet: <code>cairn pull hf:OWNER/REPO:TAG</code> fetches one.
                  </td>
                </tr>
              )}
              {stored.map((m) => (
                <tr key={m.name}>
                  <th scope="row">{m.name}</th>
                  <td>{bytes(m.size)}</td>
                  <td>{m.quantization}</td>
                  <td>{m.architecture}</td>
                  <td>
                    <time dateTime={m.pulledAt}>{new Date(m.pulledAt).toLocaleString()}</time>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </div>
  );
}
