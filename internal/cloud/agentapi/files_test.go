package agentapi_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/staffcontrol/staffcontrol/internal/cloud/agentapi"
	"github.com/staffcontrol/staffcontrol/internal/cloud/agentapi/agentapitest"
	"github.com/staffcontrol/staffcontrol/internal/cloud/auth"
	"github.com/staffcontrol/staffcontrol/internal/cloud/pgtest"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
	"github.com/staffcontrol/staffcontrol/internal/cloud/storage"
	"github.com/staffcontrol/staffcontrol/internal/cloud/storage/storagetest"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

// TestScreenshotsLandInS3: an Agent API configured with the S3 driver
// (STORAGE_DRIVER=s3, against SeaweedFS; skipped without weed like the
// storage package's S3 tests) stores an ingested screenshot batch's images
// in the bucket, under the keys its rows reference, byte for byte.
func TestScreenshotsLandInS3(t *testing.T) {
	var weed storagetest.Weed
	defer weed.Stop()
	s3cfg := weed.Config(t)
	ctx := context.Background()
	db := pg.NewDatabase(t)
	admin, err := pgx.Connect(ctx, db.AdminURL)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	org, err := pgtest.SeedOrganization(ctx, admin, "s3")
	if err != nil {
		t.Fatal(err)
	}
	key := auth.PrefixAPIKey + "files-test"
	if _, err := admin.Exec(ctx, `UPDATE gateway_instances SET api_key_hash = $2 WHERE id = $1`, org.GatewayID, auth.HashSecret(key)); err != nil {
		t.Fatal(err)
	}
	ing, err := postgres.Connect(ctx, db.IngestURL, 4, pg.ContextKey())
	if err != nil {
		t.Fatal(err)
	}
	defer ing.Close()
	api := agentapitest.Start(t, ing, agentapitest.Options{Config: agentapi.Config{Storage: storage.Config{Driver: storage.DriverS3, S3: s3cfg}}})

	now := time.Now().UTC().Truncate(time.Millisecond)
	images := map[string][]byte{}
	var events []protocol.Event
	for i := range 3 {
		img := bytes.Repeat([]byte{0x89, 'P', 'N', 'G', byte(i)}, 2000+i)
		sum := sha256.Sum256(img)
		id := uuid.Must(uuid.NewV7()).String()
		images[id] = img
		events = append(events, protocol.Event{EventID: id, Seq: int64(100 + i), Type: protocol.TypeScreenshot, AgentUID: "agent-1",
			ComputerName: "PC-1", UserSID: "S-1-5-21-1", Datetime: now.Add(-time.Duration(i) * time.Second),
			Screenshot: &protocol.Screenshot{SHA256: hex.EncodeToString(sum[:]), Size: int64(len(img)), ContentType: "image/png"}})
	}
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	w, _ := mw.CreateFormField(protocol.ScreenshotBatchPart)
	if err := json.NewEncoder(w).Encode(protocol.ScreenshotBatch{Events: events}); err != nil {
		t.Fatal(err)
	}
	for id, img := range images {
		fw, _ := mw.CreateFormFile(id, id+".png")
		_, _ = fw.Write(img)
	}
	_ = mw.Close()
	req, _ := http.NewRequest(http.MethodPost, api.URL+protocol.PathIngestScreenshots, &body)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set(protocol.HeaderAPIKey, key)
	req.Header.Set(protocol.HeaderIdempotencyKey, uuid.NewString())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var got protocol.IngestResponse
	if resp.StatusCode != http.StatusOK || json.Unmarshal(raw, &got) != nil || got.Accepted != 3 {
		t.Fatalf("upload: %d %s", resp.StatusCode, raw)
	}

	bucket, err := storage.NewS3(ctx, s3cfg)
	if err != nil {
		t.Fatal(err)
	}
	for id, img := range images {
		var path string
		if err := admin.QueryRow(ctx, `SELECT file_path FROM monitoring.screenshots WHERE id = $1`, id).Scan(&path); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(path, "screenshots/"+strconv.FormatInt(org.OrganizationID, 10)+"/") {
			t.Errorf("image %s stored outside its organisation's prefix: %s", id, path)
		}
		rc, err := bucket.Get(ctx, path)
		if err != nil {
			t.Fatalf("image %s at %s: %v", id, path, err)
		}
		stored, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(stored, img) {
			t.Errorf("image %s at %s: %d bytes stored (%v), want the %d uploaded", id, path, len(stored), err, len(img))
		}
	}
}
