import { defineConfig } from "vite";

// Relative URLs: the built app works from any directory of any server.
export default defineConfig({ base: "./", build: { outDir: "dist", emptyOutDir: true } });
