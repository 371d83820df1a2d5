package local

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"os"

	"github.com/autarky/terraform-provider-autarky/internal/swarm"
	"github.com/autarky/terraform-provider-autarky/internal/workload"
)

// workloadTarball is a root filesystem holding only the binary, as /workload.
func workloadTarball(path string) ([]byte, error) {
	bin, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("workload_binary: %w", err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: "workload", Mode: 0o755, Size: int64(len(bin)), Typeflag: tar.TypeReg}); err != nil {
		return nil, err
	}
	if _, err := tw.Write(bin); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// loadWorkload imports the workload image into a node's engine.
func loadWorkload(ctx context.Context, f instanceFile, binary string) error {
	tarball, err := workloadTarball(binary)
	if err != nil {
		return err
	}
	cli, err := swarm.Dial(f.DockerHost)
	if err != nil {
		return err
	}
	defer cli.Close()
	if err := cli.ImportImage(ctx, workload.Image, bytes.NewReader(tarball), `ENTRYPOINT ["/workload"]`); err != nil {
		return fmt.Errorf("node %s: %w", f.ID, err)
	}
	return nil
}
