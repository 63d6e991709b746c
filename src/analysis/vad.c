/*
 * Voice activity: WebRTC's detector (Debian's libwebrtc-audio-processing, mode 3, which told
 * speech from pink noise where mode 1 did not) judges 30 ms frames; runs of speech frames become
 * segments, short gaps are bridged and short blips dropped.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "analysis/internal.h"
#include "core/alloc.h"

/* The library ships no header for its VAD; these are the exported functions' signatures. */
typedef struct WebRtcVadInst VadInst;
VadInst *WebRtcVad_Create(void);
void WebRtcVad_Free(VadInst *handle);
int WebRtcVad_Init(VadInst *handle);
int WebRtcVad_set_mode(VadInst *handle, int mode);
int WebRtcVad_Process(VadInst *handle, int fs, const int16_t *audio_frame, size_t frame_length);

#define VAD_RATE 16000
#define VAD_FRAME 480 /* 30 ms */
#define VAD_MODE 3
#define VAD_BRIDGE_S 0.3     /* gaps shorter than this inside speech are speech */
#define VAD_MIN_SPEECH_S 0.2 /* shorter speech is a click, not a word */

struct vad {
    VadInst *inst;
    int16_t frame[VAD_FRAME];
    size_t fill;
    uint64_t frames;
    bool in_speech;
    double seg_start, last_speech_end;
    struct span *spans;
    size_t n, cap;
};

struct vad *vad_new(void)
{
    struct vad *v = xcalloc(1, sizeof *v);
    v->inst = WebRtcVad_Create();
    if (!v->inst || WebRtcVad_Init(v->inst) || WebRtcVad_set_mode(v->inst, VAD_MODE))
        abort(); /* allocation or a constant mode: cannot fail short of a broken library */
    return v;
}

static void close_segment(struct vad *v)
{
    double start = v->seg_start, end = v->last_speech_end;
    v->in_speech = false;
    if (end - start < VAD_MIN_SPEECH_S)
        return;
    if (v->n == v->cap) {
        v->cap = v->cap ? v->cap * 2 : 64;
        v->spans = xrealloc(v->spans, v->cap * sizeof *v->spans);
    }
    v->spans[v->n++] = (struct span){start, end};
}

static void judge_frame(struct vad *v)
{
    double t0 = (double)v->frames * VAD_FRAME / VAD_RATE;
    double t1 = t0 + (double)VAD_FRAME / VAD_RATE;
    v->frames++;
    if (WebRtcVad_Process(v->inst, VAD_RATE, v->frame, VAD_FRAME) == 1) {
        if (!v->in_speech) {
            v->in_speech = true;
            v->seg_start = t0;
        }
        v->last_speech_end = t1;
    } else if (v->in_speech && t1 - v->last_speech_end >= VAD_BRIDGE_S) {
        close_segment(v);
    }
}

void vad_feed(struct vad *v, const int16_t *pcm, size_t n)
{
    while (n) {
        size_t k = VAD_FRAME - v->fill < n ? VAD_FRAME - v->fill : n;
        memcpy(v->frame + v->fill, pcm, k * sizeof *pcm);
        v->fill += k, pcm += k, n -= k;
        if (v->fill == VAD_FRAME) {
            judge_frame(v);
            v->fill = 0;
        }
    }
}

struct span *vad_take(struct vad *v, size_t *n)
{
    if (v->in_speech)
        close_segment(v);
    struct span *s = v->spans;
    *n = v->n;
    v->spans = NULL;
    v->n = v->cap = 0;
    return s;
}

void vad_free(struct vad *v)
{
    if (!v)
        return;
    WebRtcVad_Free(v->inst);
    free(v->spans);
    free(v);
}
