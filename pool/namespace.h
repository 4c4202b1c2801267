/* namespace.h — gives the pool's internal functions the library's prefix
 * at link time.
 *
 * API.md: every public symbol starts with pool_, gc_, rc_ or mulch_. The
 * shared library hides these (MULCH_INTERNAL), but the static one exports
 * every non-static function to the program it is linked into, where a
 * name such as os_map or huge_alloc would collide with the embedder's own.
 * Each internal name is a macro for its mulch_-prefixed symbol, so the
 * sources keep their short names (as jemalloc's private namespace does).
 * Included first by every header that declares them (pool_internal.h,
 * tool.h); a new internal function without a public prefix goes here, or
 * the symbols_prefixed test fails.
 */
#ifndef MULCH_POOL_NAMESPACE_H
#define MULCH_POOL_NAMESPACE_H

#define block_adopt_abandoned            mulch_block_adopt_abandoned
#define block_collect                    mulch_block_collect
#define block_float                      mulch_block_float
#define block_push_cells                 mulch_block_push_cells
#define block_recommit_cells             mulch_block_recommit_cells
#define block_recommit_some              mulch_block_recommit_some
#define block_release_free_pages         mulch_block_release_free_pages
#define block_released_bytes             mulch_block_released_bytes
#define block_retire                     mulch_block_retire
#define block_sites_attach               mulch_block_sites_attach
#define block_sites_release              mulch_block_sites_release
#define block_to_dormant                 mulch_block_to_dormant
#define block_unfull                     mulch_block_unfull
#define cell_drop_unmarked               mulch_cell_drop_unmarked
#define recent_cell_drop_unmarked        mulch_recent_cell_drop_unmarked
#define chunk_covering                   mulch_chunk_covering
#define chunk_map_init                   mulch_chunk_map_init
#define chunk_map_insert                 mulch_chunk_map_insert
#define chunk_map_lock                   mulch_chunk_map_lock
#define chunk_map_remove                 mulch_chunk_map_remove
#define chunk_map_resize                 mulch_chunk_map_resize
#define chunk_map_top                    mulch_chunk_map_top
#define chunk_map_blocks_start           mulch_chunk_map_blocks_start
#define chunk_map_unlock                 mulch_chunk_map_unlock
#define chunks_unmap_all_locked          mulch_chunks_unmap_all_locked
#define heap_abandon                     mulch_heap_abandon
#define heap_counts_sum                  mulch_heap_counts_sum
#define heap_lookup_for_free             mulch_heap_lookup_for_free
#define heap_lookup_slow                 mulch_heap_lookup_slow
#define heap_recent_flush                mulch_heap_recent_flush
#define heap_registry_lock               mulch_heap_registry_lock
#define heap_registry_unlock             mulch_heap_registry_unlock
#define heap_release_empty               mulch_heap_release_empty
#define heap_release_free_pages          mulch_heap_release_free_pages
#define heap_release_free_pages_auto     mulch_heap_release_free_pages_auto
#define heaps_abandon_exited             mulch_heaps_abandon_exited
#define heaps_forget_pool                mulch_heaps_forget_pool
#define huge_alloc                       mulch_huge_alloc
#define huge_alloc_zeroed                mulch_huge_alloc_zeroed
#define huge_cache_flush_locked          mulch_huge_cache_flush_locked
#define huge_free                        mulch_huge_free
#define huge_realloc                     mulch_huge_realloc
#define huge_resized                     mulch_huge_resized
#define huge_unmap_all_locked            mulch_huge_unmap_all_locked
#define os_decommit                      mulch_os_decommit
#define os_fail_after                    mulch_os_fail_after
#define os_map                           mulch_os_map
#define os_map_aligned                   mulch_os_map_aligned
#define os_move_force_copy               mulch_os_move_force_copy
#define os_move_pages                    mulch_os_move_pages
#define os_mapped_bytes                  mulch_os_mapped_bytes
#define os_protect_none                  mulch_os_protect_none
#define os_remap                         mulch_os_remap
#define os_resize_in_place               mulch_os_resize_in_place
#define os_retire                        mulch_os_retire
#define os_release_chunk                 mulch_os_release_chunk
#define os_retired_contains              mulch_os_retired_contains
#define os_retired_lock_for_fork         mulch_os_retired_lock_for_fork
#define os_retired_unlock_for_fork       mulch_os_retired_unlock_for_fork
#define os_unmap                         mulch_os_unmap
#define pointer_check                    mulch_pointer_check
#define side_acquire_bytes_locked        mulch_side_acquire_bytes_locked
#define side_acquire_locked              mulch_side_acquire_locked
#define side_any_touched_locked          mulch_side_any_touched_locked
#define side_counted_span_locked         mulch_side_counted_span_locked
#define side_release_locked              mulch_side_release_locked
#define side_trim_span_locked            mulch_side_trim_span_locked
#define small_alloc_slow                 mulch_small_alloc_slow
#define span_audit_cells                 mulch_span_audit_cells
#define span_audit_empty                 mulch_span_audit_empty
#define span_acquire_locked              mulch_span_acquire_locked
#define span_forget_released_locked      mulch_span_forget_released_locked
#define span_release_locked              mulch_span_release_locked
#define span_trim_locked                 mulch_span_trim_locked
#define tool_vg_running                  mulch_tool_vg_running

#endif /* MULCH_POOL_NAMESPACE_H */
