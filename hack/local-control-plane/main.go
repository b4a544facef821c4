// Command local-control-plane runs a real kube-apiserver and etcd (through
// controller-runtime's envtest) with the millis CRDs installed, and writes an
// admin kubeconfig for it. The demo and the e2e tests use it in place of a
// cluster, because no container engine (and so no kind) runs on our machines.
//
// Usage:
//
//	KUBEBUILDER_ASSETS=$(hack/control-plane.sh) bin/local-control-plane [--kubeconfig bin/demo/kubeconfig]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "local-control-plane:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	// A FlagSet of our own: controller-runtime registers its own --kubeconfig
	// (meaning "read from") on the global one.
	fs := flag.NewFlagSet("local-control-plane", flag.ContinueOnError)
	assets := fs.String("assets", os.Getenv("KUBEBUILDER_ASSETS"), "directory holding kube-apiserver and etcd (default $KUBEBUILDER_ASSETS)")
	crds := fs.String("crds", "config/crd/bases", "directory of CRD manifests to install")
	kubeconfig := fs.String("kubeconfig", "bin/demo/kubeconfig", "where to write the admin kubeconfig")
	verbose := fs.Bool("verbose", false, "attach kube-apiserver and etcd output to this process's stdout and stderr")
	if err := fs.Parse(args); err != nil {
		return err
	}

	if *assets == "" {
		return fmt.Errorf("no control plane binaries: set --assets or KUBEBUILDER_ASSETS (hack/control-plane.sh prints the directory)")
	}

	// Subscribe before starting so a Ctrl-C during the few seconds of start-up
	// still stops the servers instead of orphaning them.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	useExisting := false
	env := &envtest.Environment{
		BinaryAssetsDirectory:    *assets,
		CRDDirectoryPaths:        []string{*crds},
		ErrorIfCRDPathMissing:    true,
		AttachControlPlaneOutput: *verbose,
		// USE_EXISTING_CLUSTER in the caller's environment must not turn this
		// into a no-op against some other cluster.
		UseExistingCluster: &useExisting,
	}
	err := startAndServe(ctx, env, *kubeconfig)
	// Stop even when Start failed: a CRD that the apiserver rejects fails Start
	// after kube-apiserver and etcd are already running, and envtest leaves
	// them behind.
	if stopErr := env.Stop(); stopErr != nil && err == nil {
		err = fmt.Errorf("stop control plane: %w", stopErr)
	}
	return err
}

// startAndServe starts the control plane, publishes the admin kubeconfig and
// waits for a signal. The kubeconfig is removed again on the way out so that
// nothing waiting for the file can mistake a stale one for a running control
// plane.
func startAndServe(ctx context.Context, env *envtest.Environment, path string) error {
	if _, err := env.Start(); err != nil {
		return fmt.Errorf("start control plane: %w", err)
	}
	if ctx.Err() != nil {
		return nil // interrupted while starting
	}
	user, err := env.AddUser(envtest.User{Name: "admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return fmt.Errorf("add admin user: %w", err)
	}
	cfg, err := user.KubeConfig()
	if err != nil {
		return fmt.Errorf("render admin kubeconfig: %w", err)
	}
	if err := writeFileAtomic(path, cfg); err != nil {
		return fmt.Errorf("write kubeconfig: %w", err)
	}
	defer os.Remove(path)

	abs, err := filepath.Abs(path)
	if err != nil {
		abs = path
	}
	fmt.Printf("control plane ready; KUBECONFIG=%s\n", abs)

	<-ctx.Done()
	fmt.Println("stopping control plane")
	return nil
}

// writeFileAtomic writes through a temporary file and a rename, because the
// demo and the e2e tests poll for the file and must never read half of it.
func writeFileAtomic(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".kubeconfig-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
