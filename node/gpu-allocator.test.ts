// The runner's GPU devices: lowest free indices first, never one device to two runs, a clear
// refusal when too few are free, and devices back in the pool (and listeners told) on release.
import { describe, expect, it } from 'vitest'
import { GpuAllocator, GpuShortageError } from './gpu-allocator.ts'

describe('GpuAllocator', () => {
  it('hands out free indices, lowest first, and never the same device twice', () => {
    const gpus = new GpuAllocator([3, 0, 2, 1])
    expect(gpus.acquire('a', 1)).toEqual([0])
    expect(gpus.acquire('b', 2)).toEqual([1, 2])
    expect(gpus.acquire('c', 0)).toEqual([])
    expect(gpus.acquire('d', 1)).toEqual([3])
    expect(gpus.free()).toEqual([])
  })

  it('refuses a run asking more than is free, naming the job, the count and the free indices, and takes nothing', () => {
    const gpus = new GpuAllocator([0, 1, 2])
    gpus.acquire('first', 2)
    expect(() => gpus.acquire('greedy', 2)).toThrow(new GpuShortageError({ jobId: 'greedy', asked: 2, free: [2], total: 3 }))
    expect(() => gpus.acquire('greedy', 2)).toThrow('job greedy asks for 2 GPUs, but only 1 is free (indices 2) of the 3 this node offers')
    expect(gpus.free()).toEqual([2])
    gpus.acquire('second', 1)
    expect(() => gpus.acquire('late', 1)).toThrow('job late asks for 1 GPU, but no device is free of the 3 this node offers')
    expect(() => new GpuAllocator([]).acquire('any', 1)).toThrow('job any asks for 1 GPU, but no device is free of the 0 this node offers')
  })

  it('takes devices back when their run ends, tells listeners, and refuses to take back what it did not hand out', () => {
    const gpus = new GpuAllocator([0, 1])
    const a = gpus.acquire('a', 1)
    const b = gpus.acquire('b', 1)
    let released = 0
    const stop = gpus.onRelease(() => released++)
    gpus.release(a)
    expect(released).toBe(1)
    expect(gpus.free()).toEqual([0])
    // The freed device goes to the next run; the one still held does not.
    expect(gpus.acquire('c', 1)).toEqual([0])
    expect(() => gpus.acquire('d', 1)).toThrow(GpuShortageError)
    expect(() => gpus.release([5])).toThrow('GPU 5 is not one of this node\'s devices (0,1)')
    gpus.release(b)
    expect(() => gpus.release(b)).toThrow('GPU 1 was given back while free')
    expect(() => gpus.release([0, 0])).toThrow(/name a device twice/)
    stop()
    gpus.release([0])
    expect(released).toBe(2) // not told after it stopped listening
    expect(gpus.free()).toEqual([0, 1])
  })

  it('refuses device lists that are not indices', () => {
    expect(() => new GpuAllocator([0, 0])).toThrow(/name a device twice/)
    expect(() => new GpuAllocator([-1])).toThrow(/not a whole number/)
    expect(() => new GpuAllocator([0]).acquire('j', 1.5)).toThrow('job j: a GPU count must be a whole number >= 0, got 1.5')
  })
})
