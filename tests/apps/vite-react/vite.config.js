import { defineConfig } from 'vite'
import react from '@vitejs/plugin-react'

// Stock: nothing here for the preview. The fleet ingress sends Vite its own Host
// (127.0.0.1:port), so Vite's allowedHosts check passes as it does on localhost.
export default defineConfig({
  plugins: [react()],
})
