package buffer

// Screenshot image files: written by the collector to a temporary file in
// the screenshot directory, synced and renamed into place (PlaceScreenshot).

import (
	"fmt"
	"os"
	"path/filepath"
)

// ScreenshotPath is where the image of a screenshot event is kept.
func (b *Buffer) ScreenshotPath(eventID string) string {
	return filepath.Join(b.shotDir, eventID)
}

// CreateScreenshotTemp creates a temporary file for an incoming image in the
// screenshot directory. The caller writes it and either places it with
// PlaceScreenshot or removes it.
func (b *Buffer) CreateScreenshotTemp() (*os.File, error) {
	f, err := os.CreateTemp(b.shotDir, "tmp-*")
	if err != nil {
		return nil, fmt.Errorf("buffer: create screenshot file: %w", err)
	}
	return f, nil
}

// PlaceScreenshot makes a written temporary file the image of eventID: it
// syncs the file (unless synchronous is NORMAL), closes it and renames it
// into place, then syncs the directory. On error the temporary file is
// removed.
func (b *Buffer) PlaceScreenshot(f *os.File, eventID string) error {
	durable := b.opts.Synchronous != "NORMAL"
	if durable {
		if err := f.Sync(); err != nil {
			f.Close()
			os.Remove(f.Name())
			return fmt.Errorf("buffer: sync screenshot: %w", err)
		}
	}
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("buffer: close screenshot: %w", err)
	}
	if err := os.Rename(f.Name(), b.ScreenshotPath(eventID)); err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("buffer: place screenshot: %w", err)
	}
	if durable {
		if d, err := os.Open(b.shotDir); err == nil {
			err = d.Sync()
			d.Close()
			if err != nil {
				return fmt.Errorf("buffer: sync screenshot directory: %w", err)
			}
		}
	}
	return nil
}
