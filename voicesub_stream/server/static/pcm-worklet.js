// Microphone audio to 16 kHz mono s16le, in 100 ms frames, off the page's main thread.
// Each output sample averages the input samples its span covers (a box filter), which both
// resamples from any rate the device runs at and keeps energy above 8 kHz from folding back.

class Pcm16Processor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const target = options.processorOptions?.targetRate ?? 16000;
    this.step = sampleRate / target; // input samples per output sample
    this.frameLength = target / 10;
    this.frame = new Int16Array(this.frameLength);
    this.filled = 0;
    this.sum = 0;
    this.count = 0;
    this.phase = 0;
  }

  process(inputs) {
    const channels = inputs[0];
    if (!channels || channels.length === 0) return true;
    const length = channels[0].length;
    for (let i = 0; i < length; i++) {
      let mono = 0;
      for (const channel of channels) mono += channel[i];
      this.sum += mono / channels.length;
      this.count += 1;
      this.phase += 1;
      if (this.phase >= this.step) {
        this.phase -= this.step;
        const v = Math.max(-1, Math.min(1, this.sum / this.count));
        this.frame[this.filled++] = v < 0 ? v * 0x8000 : v * 0x7fff;
        this.sum = 0;
        this.count = 0;
        if (this.filled === this.frame.length) {
          this.port.postMessage(this.frame.buffer, [this.frame.buffer]);
          this.frame = new Int16Array(this.frameLength); // the old one went to the page
          this.filled = 0;
        }
      }
    }
    return true;
  }
}

registerProcessor("pcm16", Pcm16Processor);
