// Command argocd-cm renders config/argocd/argocd-cm.yaml, the argocd-cm
// patch that installs the operator's Argo CD health checks, from the
// health.lua files under config/argocd (make argocd).
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/callops/millis-operator/internal/argocd"
)

func main() {
	dir := flag.String("dir", filepath.Join("config", "argocd"), "directory holding <group>/<Kind>/health.lua")
	out := flag.String("out", "", "file to write (default <dir>/argocd-cm.yaml)")
	flag.Parse()
	if *out == "" {
		*out = filepath.Join(*dir, "argocd-cm.yaml")
	}
	checks, err := argocd.Load(*dir)
	if err == nil {
		err = os.WriteFile(*out, argocd.RenderConfigMap(checks), 0o644)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "argocd-cm:", err)
		os.Exit(1)
	}
	fmt.Printf("wrote %s (%d health checks)\n", *out, len(checks))
}
