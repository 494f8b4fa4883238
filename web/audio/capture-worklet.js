// AudioWorklet: hands the microphone's samples (already at the context's 24 kHz) and
// their level to the page, about every 20 ms.

class CaptureProcessor extends AudioWorkletProcessor {
  constructor() {
    super();
    this.frames = [];
    this.count = 0;
  }

  process(inputs) {
    const channel = inputs[0] && inputs[0][0];
    if (channel) {
      this.frames.push(channel.slice());
      this.count += channel.length;
      if (this.count >= 480) {
        const samples = new Float32Array(this.count);
        let at = 0;
        let sum = 0;
        for (const f of this.frames) {
          samples.set(f, at);
          at += f.length;
          for (const x of f) sum += x * x;
        }
        this.port.postMessage({ samples, level: Math.sqrt(sum / this.count) }, [samples.buffer]);
        this.frames = [];
        this.count = 0;
      }
    }
    return true;
  }
}

registerProcessor("parlour-capture", CaptureProcessor);
