// Lint rules: typescript-eslint's recommended set over src/, test/, bench/ and the dashboard's web/.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import globals from 'globals';

export default tseslint.config(
  { ignores: ['dist/', 'build/', 'node_modules/', 'native/', '.scratch/', '**/*.cjs'] },
  { languageOptions: { globals: globals.node } },
  // The dashboard runs in the browser.
  { files: ['web/**'], languageOptions: { globals: globals.browser } },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-non-null-assertion': 'off',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
);
