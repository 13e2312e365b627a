/*
 * response_format / grammar fields (st_api_format.c). Internal to the API
 * layer: called once per generating request from st_api_req.c.
 */
#ifndef ST_API_FORMAT_H
#define ST_API_FORMAT_H

#include <yajl/yajl_tree.h>

#include "starling/st_api.h"

/* Compiles obj's response_format or grammar into req->constraint (NULL
 * when none); problems become request errors (400), *nomem = 1 when out
 * of memory. */
void st_api_constraint(st_api_request *req, yajl_val obj, int *nomem);

#endif /* ST_API_FORMAT_H */
