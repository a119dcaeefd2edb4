/* What a SnapStart restore renews. See include/snapstart.h. */
#include "snapstart.h"

#include <string.h>

#include "lifecycle.h"
#include "log.h"

void snapstart_on_event(struct app *app)
{
    if (app->cfg->init_type == INIT_SNAP_START)
        snapstart_restored(app, "first event after init");
}

void snapstart_restored(struct app *app, const char *source)
{
    if (app->snap.restored)
        return;
    app->snap.restored = true;
    char old[sizeof(app->session_id)];
    memcpy(old, app->session_id, sizeof(old));
    session_id_generate(app->session_id);
    if (app->upstream)
        upstream_after_restore(app->upstream);
    credentials_after_restore(&app->creds);
    /* Uploads still pending were accepted before the snapshot: every restored copy holds them,
     * and each delivers them (at least once, as after any failure). */
    log_info("restored from a SnapStart snapshot: new session id, fresh connections",
             LKS("source", source) LKS("snapshot_session_id", old)
                 LKS("session_id", app->session_id)
                     LKI("pending_from_snapshot", queue_pending(&app->q)));
}
