/** The login field shown when the server asks for an API key; the key stays in this tab only. */
import { useState } from 'preact/hooks';
import { apiKey, setApiKey } from './auth';

/** Asks for the key, saying so when the one given was refused. */
export function Login() {
  const [key, setKey] = useState('');
  const refused = apiKey() !== null;
  return (
    <form
      class="login"
      onSubmit={(e) => {
        e.preventDefault();
        setApiKey(key.trim());
      }}
    >
      <h2>API key needed</h2>
      <p>This server was started with --api-key. The key is kept in this browser tab only (session storage).</p>
      {refused && (
        <p class="error" role="alert">
          The server refused that key.
        </p>
      )}
      <label for="api-key">API key</label>
      <input
        id="api-key"
        type="password"
        autocomplete="current-password"
        value={key}
        onInput={(e) => setKey(e.currentTarget.value)}
        required
      />
      <button type="submit">Log in</button>
    </form>
  );
}
