import { defineConfig } from 'vite'
import react from '@vitejs/plugin-react'

// Stock config. The preview host (sbx-app.preview.localhost) is not localhost, so Vite's
// DNS-rebinding guard must be told it is expected: that is the one line a sandbox needs.
export default defineConfig({
  plugins: [react()],
  server: { allowedHosts: ['.localhost'] },
})
